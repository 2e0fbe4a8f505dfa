package httpapi

import (
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// secretName matches the last name component of an operand that holds a
// token ID, a key, a MAC or a signature.
var secretName = regexp.MustCompile(`(?i)(token|tokenid|secret|mac|hmac|sig|signature|password|nonce|key|keybytes|rootid)$`)

// secretCompareAllowed are `==`/`!=` comparisons whose operand name looks
// secret but is not, with the reason (file base name: expression).
var secretCompareAllowed = map[string]string{
	"ratelimit.go: ae.Msg != msgInvalidToken": "an error message constant, not a token",
	"policy.go: key == v":                     "acl/policy.go: a parameter name of a policy rule",
	"snapshot.go: kind == frameToken":         "a snapshot frame's kind byte, not a token",
	"snapshot.go: kind == frameBatchKey":      "a snapshot frame's kind byte, not a key",
	"snapshot.go: rec.Kind == recordBatchKey": "a snapshot record's kind, not a key",
}

// TestSecretComparisonsConstantTime is S5's static half: no `==` or `!=`
// on a token, key, MAC or signature in the code that handles secrets
// (httpapi and its packages, fsm, cluster, cmd/tokend); those compare with
// hmac.Equal or subtle.ConstantTimeCompare. Comparisons with nil, "" or a
// literal reveal nothing and are not flagged.
func TestSecretComparisonsConstantTime(t *testing.T) {
	var files []string
	for _, root := range []string{".", "../fsm", "../cluster", "../cmd/tokend"} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "testdata" {
				return filepath.SkipDir
			}
			if !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(files) < 20 {
		t.Fatalf("only %d files found", len(files))
	}
	fset := token.NewFileSet()
	used := map[string]bool{}
	for _, p := range files {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, p, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			be, ok := n.(*ast.BinaryExpr)
			if !ok || (be.Op != token.EQL && be.Op != token.NEQ) {
				return true
			}
			if trivial(be.X) || trivial(be.Y) || !(secretOperand(be.X) || secretOperand(be.Y)) {
				return true
			}
			var b strings.Builder
			_ = printer.Fprint(&b, fset, be)
			key := filepath.Base(p) + ": " + b.String()
			if _, ok := secretCompareAllowed[key]; ok {
				used[key] = true
				return true
			}
			t.Errorf("%s: %q compares a secret with %s; use hmac.Equal or subtle.ConstantTimeCompare (or add it to secretCompareAllowed with the reason)",
				fset.Position(be.Pos()), b.String(), be.Op)
			return true
		})
	}
	for k := range secretCompareAllowed {
		if !used[k] {
			t.Errorf("secretCompareAllowed entry %q matches nothing any more", k)
		}
	}
}

// secretOperand: an identifier or field whose name looks secret (calls
// are not values held, e.g. dec.Token()).
func secretOperand(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.Ident:
		return secretName.MatchString(x.Name)
	case *ast.SelectorExpr:
		return secretName.MatchString(x.Sel.Name)
	case *ast.IndexExpr:
		return secretOperand(x.X)
	case *ast.ParenExpr:
		return secretOperand(x.X)
	case *ast.CallExpr:
		// string(mac) and similar conversions.
		if id, ok := x.Fun.(*ast.Ident); ok && (id.Name == "string") && len(x.Args) == 1 {
			return secretOperand(x.Args[0])
		}
	}
	return false
}

// trivial: nil, a literal, or len(…): comparing with them leaks nothing.
func trivial(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.BasicLit:
		return true
	case *ast.Ident:
		return x.Name == "nil" || x.Name == "true" || x.Name == "false"
	case *ast.CallExpr:
		if id, ok := x.Fun.(*ast.Ident); ok && id.Name == "len" {
			return true
		}
	}
	return false
}
