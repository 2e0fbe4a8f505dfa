// Command gendocs regenerates docs/api.md from the httpapi route tables.
//
//	go run ./httpapi/cmd/gendocs [-o docs/api.md]
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/tokend/tokend/httpapi"
)

func main() {
	out := flag.String("o", "docs/api.md", "output file (- for stdout)")
	flag.Parse()
	if *out == "-" {
		if err := httpapi.WriteDocs(os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "gendocs:", err)
			os.Exit(1)
		}
		return
	}
	if err := os.WriteFile(*out, httpapi.APIDocs(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		os.Exit(1)
	}
}
