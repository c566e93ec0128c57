// Package tui is concord's interactive terminal interface: a full-screen
// bubbletea program that shows the scan, lets a person review and change
// every planned action (resolving conflicts), runs the transfer with a
// progress view and ends on a summary of what happened.
//
// Run is the only entry point that starts a full-screen program; AskTrust
// asks whether to trust an unknown SSH host key (inside Run's screen when
// one is showing). Batch mode never calls either. Each screen is a small
// component with its own SetSize; key bindings live in keys.go, from which
// the help bars are generated, and styles in styles.go.
//
// # The review
//
// One row per plan item that is not a mere archive update: side 1's state,
// the action's arrow, side 2's state and the path, conflicts first, then
// in path order. A "*" after the arrow marks a choice that differs from
// the default. The keys (? shows them all on screen):
//
//	↑ ↓ k j p n          move (p/n as in Unison)
//	PgUp PgDn ^B ^F space move by a page
//	Home End             first, last row
//	> or .               make side 2 like side 1 (propagate 1 → 2)
//	< or ,               make side 1 like side 2 (propagate 2 → 1)
//	s                    skip the item
//	r or f               back to the default action
//	R                    every item back to its default
//	C then > < s r       the same for every conflict
//	D then > < s r       for every item under the selected directory (the
//	                     selected item if it is a directory, else its parent)
//	F then > < s r       for every item the filter shows (all without one)
//	/                    filter by path text, as typed (smart case: ignore
//	                     case unless the text has a capital); enter keeps
//	                     it, esc clears it
//	enter, d or x        details: both sides' size, time, permissions and
//	                     hash, and a coloured diff of text files
//	g                    go: carry out everything that is not skipped;
//	                     conflicts left unresolved are skipped
//	q                    quit without changing anything (asks first when
//	                     choices were made); ctrl+c quits at once
//
// After a choice on one item the selection moves to the next row, as in
// Unison. A choice that the run's --no-deletion, --no-update or
// --no-creation forbid is refused with the reason on the status line;
// propagating an absence (a deletion) is a valid choice otherwise.
package tui
