package acl

// DefaultPolicyText is the document of the built-in "default" policy, written
// at initialisation. It grants what Vault's stock default policy grants
// (VAULT-API.md §2.5): a token may inspect, renew and revoke itself, ask what
// it may do, manage its own leases, cubbyhole and response wrapping, and use
// the hashing tool. It grants nothing else on auth/token (no create, lookup
// of other tokens, roles) and nothing under sys/policies.
const DefaultPolicyText = `# The built-in "default" policy: what every token may do to and about itself.

# Read its own token record (auth/token/lookup-self; GET only).
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Extend its own TTL.
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Revoke itself (and its children).
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Ask which capabilities it holds on given paths.
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# Read its own identity entity, by ID or by name.
path "identity/entity/id/{{identity.entity.id}}" {
    capabilities = ["read"]
}
path "identity/entity/name/{{identity.entity.name}}" {
    capabilities = ["read"]
}

# See the combined ACL of its own policies (used by the UI).
path "sys/internal/ui/resultant-acl" {
    capabilities = ["read"]
}

# Renew a lease it knows the ID of (legacy and current paths).
path "sys/renew" {
    capabilities = ["update"]
}
path "sys/leases/renew" {
    capabilities = ["update"]
}

# Look up a lease it knows the ID of; reveals nothing secret.
path "sys/leases/lookup" {
    capabilities = ["update"]
}

# Full use of its private cubbyhole.
path "cubbyhole/*" {
    capabilities = ["create", "read", "update", "delete", "list"]
}

# Wrap values in, inspect, and unwrap response-wrapping tokens.
path "sys/wrapping/wrap" {
    capabilities = ["update"]
}
path "sys/wrapping/lookup" {
    capabilities = ["update"]
}
path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}

# The hashing tool.
path "sys/tools/hash" {
    capabilities = ["update"]
}
path "sys/tools/hash/*" {
    capabilities = ["update"]
}

# Check on a control-group request it holds the accessor of.
path "sys/control-group/request" {
    capabilities = ["update"]
}

# Use the authorization endpoint of any OIDC provider.
path "identity/oidc/provider/+/authorize" {
    capabilities = ["read", "update"]
}
`
