from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("account/two-factor/", views.two_factor, name="two-factor"),
    path("account/two-factor/verify/", views.two_factor_verify, name="two-factor-verify"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("wall/", views.wall, name="wall"),
    path("preferences/elder/", views.elder_mode, name="elder-mode"),
    path("notifications/", views.notifications, name="notifications"),
    path("notifications/<int:pk>/open/", views.notification_open, name="notification-open"),
]
