from rest_framework.routers import SimpleRouter

from tenants import api as api_views

app_name = "tenants-api"

router = SimpleRouter()
router.register("needs", api_views.NeedViewSet, basename="need")
router.register("keys", api_views.ApiKeyViewSet, basename="key")
router.register("members", api_views.MemberViewSet, basename="member")
router.register("tenants", api_views.TenantAdminViewSet, basename="tenant")

urlpatterns = router.urls
