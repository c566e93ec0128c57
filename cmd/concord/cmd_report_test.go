package main

import (
	"testing"

	"github.com/concord-sync/concord/archive"
	"github.com/concord-sync/concord/archive/state"
)

func TestReversed(t *testing.T) {
	for _, tc := range []struct {
		run1, run2, root1, root2 string
		want                     bool
	}{
		{"a", "b", "a", "b", false},
		{"b", "a", "a", "b", true},
		{"./b/", "a", "a", "b", true},
		{"web2:/srv", "/data", "/data", "ssh://web2/srv", true},
		{"/data", "web2:/srv", "/data", "ssh://web2/srv", false},
		{"c", "a", "a", "b", false}, // another pair: leave it as recorded
	} {
		rn := archive.Run{Root1: tc.run1, Root2: tc.run2}
		if got := reversed(rn, tc.root1, tc.root2); got != tc.want {
			t.Errorf("reversed(run %s %s, report %s %s) = %v, want %v", tc.run1, tc.run2, tc.root1, tc.root2, got, tc.want)
		}
	}
}

func TestSwapSides(t *testing.T) {
	one, two := &state.Entry{Kind: state.File, Size: 1}, &state.Entry{Kind: state.File, Size: 2}
	for _, tc := range []struct {
		action, reason         string
		wantAction, wantReason string
	}{
		{"conflict", "created on both sides with different contents", "conflict", "created on both sides with different contents"},
		{"1to2", "--no-deletion on side 2", "2to1", "--no-deletion on side 1"},
		{"2to1", "changed below on side 1 (3 paths)", "1to2", "changed below on side 2 (3 paths)"},
		{"skip", "deleted on side 1, changed on side 2", "skip", "deleted on side 2, changed on side 1"},
		{"skip", "inside 12 directories", "skip", "inside 12 directories"},
	} {
		got := swapSides(archive.RunItem{Path: "p", Action: tc.action, Reason: tc.reason, Side1: one, Side2: two})
		if got.Side1 != two || got.Side2 != one || got.Action != tc.wantAction || got.Reason != tc.wantReason {
			t.Errorf("swapSides(%s, %q) = sides %v %v, %s, %q; want the sides exchanged, %s, %q",
				tc.action, tc.reason, got.Side1, got.Side2, got.Action, got.Reason, tc.wantAction, tc.wantReason)
		}
	}
}
