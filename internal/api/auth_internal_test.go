package api

import (
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"
)

// TestEveryAPIRouteHasAScope: NewHandler's check refuses an /api route
// that routeScopes does not list, so no route ships without access
// control; routes outside /api need none.
func TestEveryAPIRouteHasAScope(t *testing.T) {
	require.NoError(t, checkRoutes(gin.RoutesInfo{
		{Method: "POST", Path: "/api/v1/audit/events"},
		{Method: "GET", Path: "/api/v1/audit/events/:event_id"},
		{Method: "GET", Path: "/health"},
	}))
	err := checkRoutes(gin.RoutesInfo{
		{Method: "POST", Path: "/api/v1/audit/events"},
		{Method: "DELETE", Path: "/api/v1/audit/events/:event_id"},
		{Method: "PUT", Path: "/api/v1/audit/legal-hold"},
	})
	require.ErrorContains(t, err, "DELETE /api/v1/audit/events/:event_id, PUT /api/v1/audit/legal-hold")
}
