from django.urls import path

from governance import views

app_name = "dashboard"

urlpatterns = [
    path("", views.home, name="home"),
]
