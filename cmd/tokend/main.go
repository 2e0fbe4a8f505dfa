package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Exit codes.
const (
	exitOK       = 0
	exitFailure  = 1 // bad usage, invalid config, server failure
	exitAPIError = 2 // a client request was answered with an error
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal restore the default handling, so a second
		// Ctrl-C kills a shutdown that hangs.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// env is what a command may use of the process: arguments aside, this is
// everything, so tests run commands without touching the real environment.
type env struct {
	ctx    context.Context
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// command is one entry of the command table.
type command struct {
	name     string // words after "tokend", e.g. "token create"
	synopsis string
	run      func(e *env, args []string) int
}

// commands lists every command in help order.
var commands = []command{
	{"server", "run a tokend node (tokend server -h lists every flag)", runServerCmd},
	{"token create", "create a token", tokenCreate},
	{"token lookup", "show a token's properties (no argument: the caller's token)", tokenLookup},
	{"token renew", "renew a token's lease (no argument: the caller's token)", tokenRenew},
	{"token revoke", "revoke a token and its descendants", tokenRevoke},
	{"bench", "generate load on the token API and report ops/s and latency", benchCmd},
	{"operator members", "list the cluster members as gossip sees them", operatorMembers},
	{"operator raft list-peers", "list the servers of the raft configuration", operatorRaftListPeers},
	{"operator raft remove-peer", "remove a server from the raft configuration for good", operatorRaftRemovePeer},
	{"operator gen-certs", "create a cluster CA and node certificates for cluster TLS", operatorGenCerts},
	{"operator keyring list", "list the gossip encryption keys and the members holding them", operatorKeyringList},
	{"operator keyring install", "install a gossip key on every member", operatorKeyringInstall},
	{"operator keyring use", "make an installed gossip key primary everywhere", operatorKeyringUse},
	{"operator keyring remove", "remove a non-primary gossip key everywhere", operatorKeyringRemove},
	{"operator keygen", "print a new random key (gossip key or token hash key)", operatorKeygen},
	{"version", "print the version", func(e *env, _ []string) int {
		fmt.Fprintf(e.stdout, "tokend %s\n", version)
		return exitOK
	}},
}

// run dispatches args to the longest matching command name.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		usage(stderr)
		return exitFailure
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return exitOK
	case "-v", "-version", "--version":
		args = []string{"version"}
	}
	for n := min(len(args), 3); n > 0; n-- {
		name := strings.Join(args[:n], " ")
		for _, c := range commands {
			if c.name == name {
				return c.run(e, args[n:])
			}
		}
	}
	fmt.Fprintf(stderr, "tokend: unknown command %q\n\n", strings.Join(args, " "))
	usage(stderr)
	return exitFailure
}

func usage(w io.Writer) {
	fmt.Fprint(w, "Usage: tokend <command> [flags] [args]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-26s %s\n", c.name, c.synopsis)
	}
	fmt.Fprint(w, `
Client commands talk to TOKEND_ADDR (else VAULT_ADDR, else
http://127.0.0.1:8200) with the token in TOKEND_TOKEN (else VAULT_TOKEN).
For https, TOKEND_CACERT/VAULT_CACERT (or _CAPATH) names the CA to trust,
TOKEND_CLIENT_CERT/_CLIENT_KEY a client certificate, and _SKIP_VERIFY=true
turns verification off.
Run "tokend <command> -h" for the flags of a command.
`)
}
