package chaos

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
)

// Environment variables of the network-namespace re-exec.
const (
	// EnvInNetns is set (to "1") in the re-executed test binary, which then
	// runs inside its private network namespace.
	EnvInNetns = "TOKEND_CHAOS_NETNS"
	// EnvBinary names a prebuilt tokend binary (built outside the namespace,
	// where the module proxy is reachable).
	EnvBinary = "TOKEND_CHAOS_BIN"
)

// GroupBase is added to a node's number (1-based) to get the group id its
// process runs with; the nftables rules identify nodes by it.
const GroupBase = 2000

// Capabilities says which fault families can be injected here, and why not.
type Capabilities struct {
	// Netns is true inside the private network namespace.
	Netns bool
	// Partitions is true when nftables rules can cut links.
	Partitions bool
	// PartitionsWhy says why Partitions is false.
	PartitionsWhy string
	// SlowLinks is true when link delay and loss can be injected: through
	// per-link fault proxies that an nftables nat chain puts in the
	// node-to-node paths (links.go; this kernel has no tc netem).
	SlowLinks bool
	// SlowLinksWhy says why SlowLinks is false.
	SlowLinksWhy string
	// Missing lists every fault family that cannot be injected, with the reason.
	Missing []string
}

// Injectable reports whether nemesis name can be injected here, and why
// not.
func (c Capabilities) Injectable(name string) (bool, string) {
	if needsPartitions(name) && !c.Partitions {
		return false, c.PartitionsWhy
	}
	return true, ""
}

// netnsFailure is why the re-exec under unshare -n was not possible
// although it was tried (set by ReexecInNetns, read by Probe).
var netnsFailure string

// ReexecInNetns re-runs the current test binary under `unshare -n` with the
// same arguments when that is possible and not yet done, and returns its
// exit code with ok=true; the caller exits with it. ok=false means the caller
// runs here (already inside, or no namespace possible: Probe reports why).
func ReexecInNetns(bin string) (code int, ok bool, err error) {
	if os.Getenv(EnvInNetns) == "1" {
		return 0, false, nil
	}
	if os.Geteuid() != 0 {
		return 0, false, nil
	}
	unshare, lerr := exec.LookPath("unshare")
	if lerr != nil {
		return 0, false, nil
	}
	// A container without CAP_SYS_ADMIN has unshare but may not use it:
	// try first, so that is reported as a fault that cannot be injected
	// instead of a bare exit status.
	if out, err := exec.Command(unshare, "-n", "true").CombinedOutput(); err != nil {
		netnsFailure = fmt.Sprintf("unshare -n failed: %v: %s", err, strings.TrimSpace(string(out)))
		return 0, false, nil
	}
	self, err := os.Executable()
	if err != nil {
		return 0, false, err
	}
	cmd := exec.Command(unshare, append([]string{"-n", "--", self}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), EnvInNetns+"=1", EnvBinary+"="+bin)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if ee, isExit := err.(*exec.ExitError); isExit {
			return ee.ExitCode(), true, nil
		}
		return 0, false, fmt.Errorf("unshare -n: %w", err)
	}
	return 0, true, nil
}

// Probe sets up the namespace (lo up) when inside one and reports what can
// be injected.
func Probe() Capabilities {
	var c Capabilities
	defer func() {
		if c.PartitionsWhy != "" {
			c.Missing = append(c.Missing, "partitions (isolate, split, bridge, one-way): "+c.PartitionsWhy)
		}
		if c.SlowLinksWhy != "" {
			c.Missing = append(c.Missing, "slow links (delay, loss, one-way cut through fault proxies): "+c.SlowLinksWhy)
		}
	}()
	if os.Getenv(EnvInNetns) != "1" {
		why := "not running in a private network namespace"
		switch {
		case netnsFailure != "":
			why += " (" + netnsFailure + ")"
		case os.Geteuid() != 0:
			why += " (needs root for unshare -n)"
		default:
			if _, err := exec.LookPath("unshare"); err != nil {
				why += " (unshare not found)"
			}
		}
		c.PartitionsWhy, c.SlowLinksWhy = why, why
		return c
	}
	c.Netns = true
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		why := fmt.Sprintf("ip link set lo up: %v %s", err, out)
		c.PartitionsWhy, c.SlowLinksWhy = why, why
		return c
	}
	if _, err := exec.LookPath("nft"); err != nil {
		why := "nft not found (scripts/ensure-chaos-deps.sh installs nftables)"
		c.PartitionsWhy, c.SlowLinksWhy = why, why
		return c
	}
	if err := applyRules(1, nil); err != nil {
		c.PartitionsWhy = "nft: " + err.Error()
	} else {
		c.Partitions = true
	}
	if err := probeNAT(); err != nil {
		c.SlowLinksWhy = "nft nat output chain (dnat): " + err.Error()
	} else {
		c.SlowLinks = true
	}
	return c
}

// Link is one directed link: packets node From sends to node To (0-based).
type Link struct{ From, To int }

// Network injects link faults between the nodes. Cut replaces the set of
// dropped directed links; Heal drops none.
type Network interface {
	Cut(links []Link) error
	Heal() error
}

// nftNetwork cuts links with one nftables table in the private namespace.
type nftNetwork struct {
	nodes int
	addr  func(i int) string
}

// applyRules replaces table ip tokend_chaos with the marking rules for n
// nodes and one drop pair per cut link (see doc.go for the rule shape).
func applyRules(n int, cut []string) error {
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = bytes.NewReader(rulesText(n, cut))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// rulesText is the nftables file applyRules loads.
func rulesText(n int, cut []string) []byte {
	var b bytes.Buffer
	// Declaring the table first makes the delete succeed when it does not
	// exist yet; the whole file is one atomic transaction.
	b.WriteString("table ip tokend_chaos\ndelete table ip tokend_chaos\n")
	b.WriteString("table ip tokend_chaos {\n\tchain out {\n\t\ttype filter hook output priority 0; policy accept;\n")
	for k := 1; k <= n; k++ {
		fmt.Fprintf(&b, "\t\tct state new meta skgid %d ct mark set %d\n", GroupBase+k, k)
	}
	for _, r := range cut {
		b.WriteString("\t\t" + r + "\n")
	}
	b.WriteString("\t}\n}\n")
	return b.Bytes()
}

func (n *nftNetwork) Cut(links []Link) error { return applyRules(n.nodes, n.dropRules(links)) }

// dropRules returns the two rules that drop what From sends to To, per link.
func (n *nftNetwork) dropRules(links []Link) []string {
	var rules []string
	for _, l := range dedupLinks(links) {
		a, b := l.From+1, l.To+1
		rules = append(rules,
			fmt.Sprintf("ct direction original ct mark %d ip daddr %s drop", a, n.addr(l.To)),
			fmt.Sprintf("ct direction reply ct mark %d ip saddr %s drop", b, n.addr(l.From)))
	}
	return rules
}

func (n *nftNetwork) Heal() error { return applyRules(n.nodes, nil) }

func dedupLinks(links []Link) []Link {
	seen := make(map[Link]bool)
	var out []Link
	for _, l := range links {
		if l.From != l.To && !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].From != out[j].From {
			return out[i].From < out[j].From
		}
		return out[i].To < out[j].To
	})
	return out
}

// Between returns both directions of every link between a node of a and a
// node of b.
func Between(a, b []int) []Link {
	var out []Link
	for _, x := range a {
		for _, y := range b {
			out = append(out, Link{x, y}, Link{y, x})
		}
	}
	return out
}

// nodeCredential makes node k (0-based) run as uid 0 with its own group, so
// the nftables marks can tell its sockets apart.
func nodeCredential(k int) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: 0, Gid: uint32(GroupBase + k + 1), Groups: []uint32{}},
		// A harness that dies (test timeout) takes its nodes with it.
		Pdeathsig: syscall.SIGKILL,
	}
}
