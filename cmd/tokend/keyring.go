package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"

	"github.com/hashicorp/vault/api"
)

// keyringPath is the gossip keyring's API path.
const keyringPath = "sys/keyring/gossip"

// keyringKey is one row of the keyring response.
type keyringKey struct {
	Key            string `json:"key"`
	Primary        bool   `json:"primary"`
	Members        int    `json:"members"`
	PrimaryMembers int    `json:"primary_members"`
}

// keyringData is the data of every keyring response.
type keyringData struct {
	Keys       []keyringKey `json:"keys"`
	NumMembers int          `json:"num_members"`
	Version    uint64       `json:"version"`
}

// printKeyring prints a keyring response as a table (or JSON), and its
// warnings on stderr.
func printKeyring(e *env, cf clientFlags, raw json.RawMessage, what string) error {
	var env struct {
		Data     keyringData `json:"data"`
		Warnings []string    `json:"warnings"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("%s: unexpected response: %w", what, err)
	}
	for _, w := range env.Warnings {
		fmt.Fprintf(e.stderr, "WARNING: %s\n", w)
	}
	if cf.format == "json" {
		return printJSON(e.stdout, raw)
	}
	rows := make([][]string, 0, len(env.Data.Keys))
	for _, k := range env.Data.Keys {
		rows = append(rows, []string{k.Key, strconv.FormatBool(k.Primary),
			fmt.Sprintf("%d/%d", k.Members, env.Data.NumMembers), fmt.Sprintf("%d/%d", k.PrimaryMembers, env.Data.NumMembers)})
	}
	return writeTable(e.stdout, []string{"Key", "Primary", "Installed On", "Primary On"}, rows)
}

func operatorKeyringList(e *env, argv []string) int {
	return clientCmd{
		name: "operator keyring list",
		help: "Lists the gossip encryption keys and how many live members hold each (root or sudo).",
		body: func(e *env, c *api.Client, cf clientFlags, _ []string) error {
			raw, err := readJSON(e, c, keyringPath)
			if err != nil {
				return fmt.Errorf("list gossip keys: %w", err)
			}
			return printKeyring(e, cf, raw, "list gossip keys")
		},
	}.run(e, argv)
}

// keyringChangeCmd is install, use or remove: POST {"key": KEY}.
func keyringChangeCmd(e *env, argv []string, op, help string) int {
	return clientCmd{
		name:    "operator keyring " + op,
		args:    "KEY",
		help:    help + " KEY is the base64 of 16, 24 or 32 bytes (\"-\" reads it from stdin). Root or sudo only.",
		maxArgs: 1,
		body: func(e *env, c *api.Client, cf clientFlags, args []string) error {
			if len(args) != 1 || args[0] == "" {
				return usagef("expected one KEY argument")
			}
			what := op + " gossip key"
			raw, err := writeJSON(e, c, keyringPath+"/"+op, map[string]string{"key": args[0]})
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			return printKeyring(e, cf, raw, what)
		},
	}.run(e, argv)
}

func operatorKeyringInstall(e *env, argv []string) int {
	return keyringChangeCmd(e, argv, "install", "Installs a new gossip key on every member, next to the primary key; it returns once every live member holds it.")
}

func operatorKeyringUse(e *env, argv []string) int {
	return keyringChangeCmd(e, argv, "use", "Makes an installed gossip key the primary (encrypting) key on every member.")
}

func operatorKeyringRemove(e *env, argv []string) int {
	return keyringChangeCmd(e, argv, "remove", "Removes a gossip key that is not primary from every member.")
}

// operatorKeygen prints a new random key in base64: a gossip key for
// -cluster-key and keyring install (16, 24 or 32 bytes), or a token hash
// key for -token-hash-key-file (32 to 64 bytes).
func operatorKeygen(e *env, argv []string) int {
	fs := flag.NewFlagSet("tokend operator keygen", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	n := fs.Int("bytes", 32, "key length in bytes: 16, 24 or 32 for gossip keys, 32 to 64 for a token hash key")
	err := fs.Parse(argv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(e.stdout, "Usage: tokend operator keygen [-bytes N]\n\nPrints a new random key, base64 encoded: a gossip key (-cluster-key,\n"+
			"operator keyring install) or the content of a -token-hash-key-file (chmod 600).\n\nFlags:\n")
		fs.SetOutput(e.stdout)
		fs.PrintDefaults()
		return exitOK
	}
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err == nil && (*n < 16 || *n > 64) {
		err = fmt.Errorf("-bytes must be 16 to 64 (got %d)", *n)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "tokend operator keygen: %v\n", err)
		return exitFailure
	}
	k := make([]byte, *n)
	if _, err := rand.Read(k); err != nil {
		fmt.Fprintf(e.stderr, "tokend operator keygen: %v\n", err)
		return exitFailure
	}
	fmt.Fprintln(e.stdout, base64.StdEncoding.EncodeToString(k))
	return exitOK
}
