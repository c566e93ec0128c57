// Package tui is concord's interactive terminal interface: a full-screen
// bubbletea program that shows the scan, lets a person review and change
// every planned action (resolving conflicts), runs the transfer with a
// progress view and ends on a summary of what happened.
//
// Run is the only entry point that starts a full-screen program; AskTrust
// asks whether to trust an unknown SSH host key. Batch mode never calls
// either. Each screen is a small component with its own SetSize; key
// bindings live in keys.go and styles in styles.go.
package tui
