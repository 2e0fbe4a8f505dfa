package main

import (
	"slices"
	"strings"
	"testing"
)

func TestABArgs(t *testing.T) {
	c := &cluster{addrs: []string{"http://a", "http://b", "http://c"}, leader: "http://b", follower: "http://a"}
	o := opts{prepare: 7, children: 3}
	for _, tc := range []struct {
		profile string
		want    []string
	}{
		{"create", []string{"-profile", "create", "-addr", "http://b,http://a,http://c"}},
		{"lookup-self", []string{"-profile", "lookup-self", "-addr", "http://a", "-prepare", "7"}},
		{"revoke", []string{"-profile", "revoke", "-addr", "http://b,http://a,http://c", "-prepare", "7"}},
		{"child-cascade", []string{"-profile", "child-cascade", "-children", "3", "-addr", "http://b,http://a,http://c"}},
	} {
		got, err := abArgs(o, c, tc.profile)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q %v, want %q", tc.profile, got, err, tc.want)
		}
	}
	if _, err := abArgs(o, c, "nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown profile: %v", err)
	}
}
