from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from cdp.api import not_found
from ingestion.api.tracking import tracking_urls
from ingestion.api.views import BatchView, SourceRecordsView, SourceRecordView
from profiles.api.review import MatchSuggestionViewSet, ProfileUnmergeView
from profiles.api.views import ProfileViewSet

router = SimpleRouter()
router.trailing_slash = "/?"  # /api/v1/profiles and /api/v1/profiles/ both work
router.register("profiles", ProfileViewSet, basename="profile")
router.register("match-suggestions", MatchSuggestionViewSet, basename="match-suggestion")

api_v1 = [
    path("sources/<slug:slug>/records", SourceRecordsView.as_view(), name="source-records"),
    path("sources/<slug:slug>/records/<path:external_id>", SourceRecordView.as_view(), name="source-record"),
    path("batches/<uuid:batch_id>", BatchView.as_view(), name="batch"),
    path("", include("consent.api")),
    path("profiles/<str:profile_id>/unmerge", ProfileUnmergeView.as_view(), name="profile-unmerge"),
    *router.urls,
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("v1/", include(tracking_urls())),  # Segment's HTTP API paths, for the SDKs
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api-auth/", include("rest_framework.urls")),
    re_path(r"^(api/)?v1/", not_found),  # last: what no API route above names
]
