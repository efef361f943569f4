package auth

import (
	"errors"
	"fmt"
	"path"

	"github.com/auditstream/auditstream/internal/audit"
)

// PolicyFile is the YAML document of AUTH_POLICY_FILE: which scopes and
// namespaces a JWT subject or a client certificate subject gets. Rules are
// tried in order and the first match wins, so exact subjects go before the
// globs that would also match them.
type PolicyFile struct {
	Rules []PolicyRule `json:"rules"`
}

// PolicyRule matches JWT subjects (the sub claim) or client certificate
// subjects (the distinguished name, RFC 2253 form such as
// "CN=billing,O=Example"); exactly one of the two is set. Both are
// path.Match globs: '*' matches any run of characters except '/'.
type PolicyRule struct {
	Subject     string   `json:"subject,omitempty"`
	Certificate string   `json:"certificate,omitempty"`
	Scopes      []Scope  `json:"scopes"`
	Namespaces  []string `json:"namespaces,omitempty"`
}

// credentialKind says which kind of subject a policy rule matches.
type credentialKind int

const (
	kindJWT credentialKind = iota
	kindCertificate
)

type policy struct{ rules []PolicyRule }

func loadPolicy(p string) (*policy, error) {
	var f PolicyFile
	if err := readYAML(p, "policy", &f); err != nil {
		return nil, err
	}
	var errs []error
	for i, r := range f.Rules {
		pattern := r.Subject
		if (r.Subject == "") == (r.Certificate == "") {
			errs = append(errs, fmt.Errorf("rules[%d]: set exactly one of subject and certificate", i))
		} else if r.Subject == "" {
			pattern = r.Certificate
		}
		if _, err := path.Match(pattern, ""); err != nil {
			errs = append(errs, fmt.Errorf("rules[%d]: pattern %q: %w", i, pattern, err))
		}
		if err := validateGrant(r.Scopes, r.Namespaces); err != nil {
			errs = append(errs, fmt.Errorf("rules[%d]: %w", i, err))
		}
		if pattern == audit.SystemPrincipal {
			errs = append(errs, fmt.Errorf("rules[%d]: %w", i, errReservedName))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("policy file %s: %w", p, err)
	}
	return &policy{rules: f.Rules}, nil
}

// match returns the first rule for subject of that kind.
func (p *policy) match(kind credentialKind, subject string) (PolicyRule, bool) {
	if p == nil {
		return PolicyRule{}, false
	}
	for _, r := range p.rules {
		pattern := r.Subject
		if kind == kindCertificate {
			pattern = r.Certificate
		}
		if pattern == "" {
			continue
		}
		if ok, _ := path.Match(pattern, subject); ok {
			return r, true
		}
	}
	return PolicyRule{}, false
}
