"""Change management API paths: /api/changes/... (trailing slash optional)."""
from rest_framework.routers import SimpleRouter

from . import views


class OptionalSlashRouter(SimpleRouter):
    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("changes/standard-kinds", views.StandardChangeKindViewSet, basename="change-standard-kind")
router.register("changes", views.ChangeRequestViewSet, basename="change")

urlpatterns = router.urls
