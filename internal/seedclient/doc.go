// Package seedclient is a Go client of the seed's Audit Write API, generated
// by oapi-codegen from seed-openapi.yaml, a reconstruction of the seed API
// document (see the header of that file). It exists for compatibility tests:
// SPEC section 2 promises that a client generated from the seed's API works
// against auditstream unchanged, so tests drive the real server with this
// client as generated and never edit seedclient.gen.go by hand.
package seedclient

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2 -generate types,client -package seedclient -o seedclient.gen.go seed-openapi.yaml
