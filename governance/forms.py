"""Forms the apps share."""

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.utils.translation import gettext_lazy as _

from . import security


class ResidentSearchForm(forms.Form):
    """Find a resident by a character of their name or their room number (recording points, the counter of the
    points supermarket, writing a letter down for someone)."""

    q = forms.CharField(
        label=_("姓名或房号"),
        required=False,
        max_length=50,
        widget=forms.TextInput(attrs={"type": "search", "autocomplete": "off", "placeholder": _("例如：张 或 101")}),
    )

    def __init__(self, *args, label=None, **kwargs):
        super().__init__(*args, **kwargs)
        if label:
            self.fields["q"].label = label


class LoginForm(AuthenticationForm):
    """Django's login form, which first says when the username is locked out (and for how long)."""

    def clean(self):
        minutes = security.locked_minutes(self.data.get("username"), security.client_ip(self.request))
        if minutes:
            raise forms.ValidationError(security.locked_message(minutes), code="locked")
        try:
            return super().clean()
        except forms.ValidationError:
            minutes = security.locked_minutes(self.data.get("username"), security.client_ip(self.request))
            if minutes:
                raise forms.ValidationError(security.locked_message(minutes), code="locked") from None
            raise


class CodeForm(forms.Form):
    """The six digits an authenticator app shows."""

    token = forms.RegexField(
        label=_("动态验证码"),
        regex=r"^\s*\d{6}\s*$",
        error_messages={"invalid": _("请输入验证器中的 6 位数字。"), "required": _("请输入验证器中的 6 位数字。")},
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code", "maxlength": "6"}),
    )

    def clean_token(self):
        return self.cleaned_data["token"].strip()
