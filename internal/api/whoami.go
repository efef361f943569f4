package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/auditstream/auditstream/internal/auth"
)

// WhoAmIResponse names the caller's principal: what the console shows
// and uses to offer only what the credential may do. The server still
// checks every request; this answer grants nothing.
type WhoAmIResponse struct {
	Name       string       `json:"name"`
	Scopes     []auth.Scope `json:"scopes"`
	Namespaces []string     `json:"namespaces"`
}

// whoami answers any authenticated principal, whatever its scopes.
func whoami(c *gin.Context) {
	p, _ := auth.PrincipalFrom(c.Request.Context())
	res := WhoAmIResponse{Name: p.Name, Scopes: p.Scopes, Namespaces: p.Namespaces}
	if res.Scopes == nil {
		res.Scopes = []auth.Scope{}
	}
	if res.Namespaces == nil {
		res.Namespaces = []string{}
	}
	c.JSON(http.StatusOK, res)
}
