from django.urls import path

from . import views

urlpatterns = [
    path("points/", views.points_home, name="points-home"),
    path("points/record/", views.points_record, name="points-record"),
    path("points/residents/<int:pk>/", views.points_resident, name="points-resident"),
    path("points/entries/<int:pk>/evidence/", views.entry_evidence, name="points-evidence"),
    path("points/board/", views.points_board, name="points-board"),
    path("points/shop/", views.points_shop, name="points-shop"),
    path("points/objections/", views.points_objections, name="points-objections"),
    path("points/tallies/", views.points_tallies, name="points-tallies"),
    path("points/rewards/<int:pk>/photo/", views.reward_photo, name="points-reward-photo"),
]
