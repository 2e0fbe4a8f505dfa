package httpapi

import (
	"go/parser"
	"go/token"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// gammaQ is the regularised upper incomplete gamma function Q(a, x): a
// series below a+1, a continued fraction (modified Lentz) above.
func gammaQ(a, x float64) float64 {
	if x <= 0 {
		return 1
	}
	lg, _ := math.Lgamma(a)
	if x < a+1 {
		sum, term := 1/a, 1/a
		for n := 1; n < 10000; n++ {
			term *= x / (a + float64(n))
			sum += term
			if math.Abs(term) < math.Abs(sum)*1e-15 {
				break
			}
		}
		return 1 - sum*math.Exp(-x+a*math.Log(x)-lg)
	}
	const tiny = 1e-300
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i < 10000; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 1e-15 {
			break
		}
	}
	return math.Exp(-x+a*math.Log(x)-lg) * h
}

// chiSquareP is the p-value of a χ² statistic with df degrees of freedom.
func chiSquareP(stat float64, df int) float64 { return gammaQ(float64(df)/2, stat/2) }

func TestChiSquareP(t *testing.T) {
	// Reference values (tables): χ²(1) = 3.841 → 0.05; χ²(10) = 23.209 →
	// 0.01; χ²(61) = 100.888 → 0.001 (about); χ²(61) = 61 → ≈ 0.47.
	for _, tc := range []struct {
		stat float64
		df   int
		p    float64
		tol  float64
	}{
		{3.841, 1, 0.05, 0.001}, {23.209, 10, 0.01, 0.0005}, {18.307, 10, 0.05, 0.001}, {61, 61, 0.474, 0.01}, {100.9, 61, 0.001, 0.0003},
	} {
		if p := chiSquareP(tc.stat, tc.df); math.Abs(p-tc.p) > tc.tol {
			t.Errorf("chiSquareP(%v, %d) = %v, want %v", tc.stat, tc.df, p, tc.p)
		}
	}
}

// TestTokenEntropy is S7: a million token IDs and a million accessors
// from the real generators — no duplicates, at least 22 base62 characters
// (128 bits) of body, and character frequencies uniform (χ² p > 0.001)
// over all positions and (Bonferroni-corrected) at every position.
func TestTokenEntropy(t *testing.T) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	for _, gen := range []struct {
		name   string
		prefix string
		next   func() (string, error)
	}{
		{"token ID", "hvs.", newTokenID},
		{"accessor", "", newAccessor},
	} {
		t.Run(gen.name, func(t *testing.T) {
			// Counted by byte value, mapped to base62 afterwards: the loop
			// stays cheap under the race detector.
			seen := make(map[string]struct{}, n)
			var width int
			var raw [][256]int
			for i := 0; i < n; i++ {
				id, err := gen.next()
				if err != nil {
					t.Fatal(err)
				}
				body, ok := strings.CutPrefix(id, gen.prefix)
				if !ok {
					t.Fatalf("%q lacks the prefix %q", id, gen.prefix)
				}
				if i == 0 {
					width = len(body)
					if bits := float64(width) * math.Log2(62); width < 22 || bits < 128 {
						t.Fatalf("body of %d characters = %.1f bits, want ≥ 22 characters (128 bits)", width, bits)
					}
					raw = make([][256]int, width)
				}
				if len(body) != width {
					t.Fatalf("body length %d, then %d", width, len(body))
				}
				for p := 0; p < width; p++ {
					raw[p][body[p]]++
				}
				if _, dup := seen[body]; dup {
					t.Fatalf("duplicate after %d: %q", i, id)
				}
				seen[body] = struct{}{}
			}
			counts := make([][62]int, width)
			for p := range raw {
				total := 0
				for k := 0; k < len(base62); k++ {
					counts[p][k] = raw[p][base62[k]]
					total += counts[p][k]
				}
				if total != n {
					t.Fatalf("position %d: %d characters outside base62", p, n-total)
				}
			}
			chi := func(c [62]int, total int) float64 {
				exp := float64(total) / 62
				var s float64
				for _, o := range c {
					d := float64(o) - exp
					s += d * d / exp
				}
				return s
			}
			var all [62]int
			minP := 1.0
			for p := range counts {
				for k, v := range counts[p] {
					all[k] += v
				}
				minP = math.Min(minP, chiSquareP(chi(counts[p], n), 61))
			}
			stat := chi(all, n*width)
			pAll := chiSquareP(stat, 61)
			t.Logf("%d %ss, %d base62 characters each (%.1f bits): 0 duplicates; χ²(61) over all positions = %.1f, p = %.3f; lowest per-position p = %.4f",
				n, gen.name, width, float64(width)*math.Log2(62), stat, pAll, minP)
			if pAll <= 0.001 {
				t.Errorf("character frequencies not uniform: p = %v", pAll)
			}
			if minP <= 0.001/float64(width) {
				t.Errorf("a position's character frequencies are not uniform: p = %v (threshold %v)", minP, 0.001/float64(width))
			}
		})
	}
}

// TestTokenGeneratorsUseCryptoRand is S7's static check: the packages that
// generate token IDs, accessors and keys (httpapi, httpapi/batch) never
// import math/rand, and httpapi draws from crypto/rand.
func TestTokenGeneratorsUseCryptoRand(t *testing.T) {
	for _, dir := range []string{".", "batch"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		crypto := false
		for _, p := range files {
			if strings.HasSuffix(p, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, im := range f.Imports {
				path, _ := strconv.Unquote(im.Path.Value)
				if path == "math/rand" || path == "math/rand/v2" {
					t.Errorf("%s imports %s", p, path)
				}
				if path == "crypto/rand" {
					crypto = true
				}
			}
		}
		// batch takes its nonce source from the caller (httpapi passes
		// crypto/rand.Reader); httpapi itself draws from crypto/rand.
		if dir == "." && !crypto {
			t.Errorf("package %s does not use crypto/rand", dir)
		}
	}
}
