// The app's only script, served from the app itself (the Content-Security-Policy allows no inline script).
// A <select data-autosubmit> sends its form as soon as a choice is made (the language, a street); without
// JavaScript the form's own button does the same.
document.addEventListener("change", function (event) {
  var target = event.target;
  if (target && target.matches && target.matches("select[data-autosubmit]") && target.form) {
    target.form.submit();
  }
});
