// Package profile loads named sync profiles: TOML files in
// $XDG_CONFIG_HOME/concord/NAME.toml (default ~/.config/concord/NAME.toml)
// whose keys mirror the command-line flags of `concord sync`, so that a
// nightly cron job can be written as `concord sync --batch -q NAME`.
//
// Loading is strict: an unknown key, a value of the wrong type or a value
// that does not make sense (a prefer that names neither root, a malformed
// max_delete, a third root) is an error naming the file, the line and the
// key, so a typo never silently changes what a sync does.
//
// The package only reads and checks the file. Merging it with the command
// line (flags override the profile) is the caller's job; Profile.Options and
// ResolveSide help turn the root-naming values into reconcile options.
package profile
