"""The UI shell: login, the role-aware home page, navigation, language switch, admin."""

import re

import pytest
from django.test import Client

from governance.models import Unit


def login(user):
    client = Client()
    client.force_login(user)
    return client


def test_home_sends_anonymous_visitors_to_login(city):
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_login_page_is_chinese_by_default(city):
    html = Client().get("/login/").content.decode()
    assert '<html lang="zh-hans">' in html
    assert "登录" in html
    assert 'name="username"' in html


def test_login_with_a_wrong_password_shows_the_error(city, grid_worker):
    response = Client().post("/login/", {"username": "grid_worker", "password": "wrong"})
    assert response.status_code == 200
    assert "请输入一个正确的" in response.content.decode()


def test_login_then_home(city, grid_worker):
    client = Client()
    response = client.post("/login/", {"username": "grid_worker", "password": "pass-word-123"}, follow=True)
    assert response.redirect_chain[-1][0] == "/"
    html = response.content.decode()
    assert "您好，网格员" in html
    assert "第一街道 › 第一社区 › 第一网格" in html


def test_language_switch_to_english(city, grid_worker):
    client = login(grid_worker)
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/"}, follow=True)
    html = response.content.decode()
    assert '<html lang="en">' in html
    assert "My positions" in html


def test_street_staff_home_shows_the_street_figures(city, street_staff, resident):
    html = login(street_staff).get("/").content.decode()
    assert "第一街道" in html
    assert re.search(r"<dt>社区</dt><dd>2</dd>", html)
    assert re.search(r"<dt>居民</dt><dd>1</dd>", html)
    assert "第二街道" not in html


def test_resident_home_shows_their_home_and_grid_team(city, resident, team):
    html = login(resident).get("/").content.decode()
    assert "我的家" in html
    assert "1单元101" in html
    assert "王网格" in html
    assert "管理后台" not in html


def test_navigation_shows_admin_only_to_administrators(city, admin_user, grid_worker):
    assert "管理后台" in login(admin_user).get("/").content.decode()
    assert "管理后台" not in login(grid_worker).get("/").content.decode()


def test_a_user_without_positions_is_told_so(city):
    from ..factories import UserFactory

    html = login(UserFactory()).get("/").content.decode()
    assert "还没有分配职务" in html


def test_home_page_queries_do_not_grow_with_the_city(city, street_staff, django_assert_max_num_queries):
    client = login(street_staff)
    # The street's dashboard: the hierarchy's figures, cases by stage and overdue, the trend, the KPIs and
    # rankings, the month's points, the supermarket, the letters — each a fixed number of queries.
    with django_assert_max_num_queries(40) as before:
        client.get("/")
    from governance import services

    for i in range(10):
        services.unit_create(by=None, name=f"新网格{i}", code=f"NG{i}", parent=city.c1)
    with django_assert_max_num_queries(len(before.captured_queries)):
        client.get("/")


def test_pages_reference_no_outside_assets(city, street_staff):
    html = login(street_staff).get("/").content.decode() + Client().get("/login/").content.decode()
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert not re.match(r"^(https?:)?//", url), url


def test_swagger_ui_is_served_locally(city, street_staff):
    html = login(street_staff).get("/api/docs/").content.decode()
    assert "swagger" in html.lower()
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert not re.match(r"^(https?:)?//", url), url


def test_schema_is_served(city, street_staff):
    response = login(street_staff).get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/v1/units/{id}/move/" in response.content


# --- admin ----------------------------------------------------------------------------------------------


@pytest.fixture
def admin_client(admin_user):
    admin_user.is_staff = True
    admin_user.save()
    return login(admin_user)


def test_admin_is_in_chinese_and_lists_the_tree(admin_client):
    html = admin_client.get("/admin/governance/unit/").content.decode()
    assert "组织单元" in html
    assert "第一网格" in html


def test_admin_lists_residents_masked(admin_client, resident_record):
    html = admin_client.get("/admin/governance/resident/").content.decode()
    assert "5106**********1237" in html
    assert "138****5678" in html
    assert "510603198001011237" not in html


def test_admin_adds_a_grid_through_the_service(admin_client, city):
    response = admin_client.post(
        "/admin/governance/unit/add/",
        {
            "parent": city.c2.pk,
            "name": "第九网格",
            "code": "G9",
            "grid_kind": "market",
            "compound_name": "",
            "address": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    grid = Unit.objects.get(code="G9")
    assert grid.level == "grid"
    assert grid.path.startswith(city.c2.path)
    assert grid.party_org.name == "第九网格党支部"


def test_admin_refuses_a_grid_kind_on_a_community(admin_client, city):
    response = admin_client.post(
        "/admin/governance/unit/add/", {"parent": city.s1.pk, "name": "某社区", "code": "CX", "grid_kind": "market"}
    )
    assert response.status_code == 200
    assert "只有网格才有网格类型" in response.content.decode()
    assert not Unit.objects.filter(code="CX").exists()


def test_admin_moves_a_grid(admin_client, city):
    page = admin_client.get(f"/admin/governance/unit/{city.g2.pk}/move/").content.decode()
    assert "第三社区" in page and "第一街道" not in page.split("<select")[1]
    response = admin_client.post(f"/admin/governance/unit/{city.g2.pk}/move/", {"parent": city.c3.pk})
    assert response.status_code == 302
    city.g2.refresh_from_db()
    assert city.g2.path.startswith(city.c3.path)


def test_admin_explains_why_a_street_cannot_move(admin_client, city):
    html = admin_client.get(f"/admin/governance/unit/{city.s1.pk}/move/").content.decode()
    assert "街道是顶级单元，不能移动" in html


def test_admin_refuses_to_delete_a_unit_with_children(admin_client, city):
    response = admin_client.post(f"/admin/governance/unit/{city.c1.pk}/delete/", {"post": "yes"}, follow=True)
    assert "下级单元" in response.content.decode()
    assert Unit.objects.filter(pk=city.c1.pk).exists()


def test_admin_is_closed_to_staff_without_admin_rights(city, street_staff):
    response = login(street_staff).get("/admin/governance/unit/")
    assert response.status_code == 302
