from django.urls import path

from . import views

urlpatterns = [
    path("mailbox/", views.letter_list, name="letter-list"),
    path("mailbox/write/", views.letter_write, name="letter-write"),
    path("mailbox/stats/", views.letter_stats, name="letter-stats"),
    path("mailbox/<int:pk>/", views.letter_detail, name="letter-detail"),
    path("mailbox/<int:pk>/attachments/<int:attachment_pk>/", views.letter_attachment, name="letter-attachment"),
    path("public/letters/", views.public_letter_list, name="public-letters"),
    path("public/letters/<int:pk>/", views.public_letter_detail, name="public-letter-detail"),
]
