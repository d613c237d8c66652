"""The admin's audit trail: every change made through the admin is recorded and an administrator can look it up;
nobody can alter the record, and only administrators see it."""

from django.contrib.admin.models import CHANGE, LogEntry
from django.test import Client

from mailbox.models import LetterCategory


def test_a_change_in_the_admin_is_in_the_audit_trail(city, admin_user, street_staff):
    admin_user.is_staff = admin_user.is_superuser = True
    admin_user.save()
    client = Client()
    client.force_login(admin_user)
    category = LetterCategory.objects.get(code="environment")
    url = f"/admin/mailbox/lettercategory/{category.pk}/change/"
    response = client.post(url, {"code": "environment", "name": "环境卫生与绿化", "active": "on", "order": "0"})
    assert response.status_code == 302
    assert LetterCategory.objects.get(pk=category.pk).name == "环境卫生与绿化"
    entry = LogEntry.objects.get(object_id=str(category.pk), action_flag=CHANGE)
    assert entry.user == admin_user and "名称" in entry.get_change_message()
    listing = client.get("/admin/admin/logentry/", {"q": "环境卫生与绿化"})
    assert listing.status_code == 200 and "环境卫生与绿化" in listing.content.decode()
    assert client.get(f"/admin/admin/logentry/{entry.pk}/delete/").status_code == 403
    street = Client()
    street.force_login(street_staff)
    assert street.get("/admin/admin/logentry/").status_code in (302, 403)
