"""Forms the apps share."""

from django import forms
from django.utils.translation import gettext_lazy as _


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
