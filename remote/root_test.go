package remote

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseRoot(t *testing.T) {
	tests := []struct {
		in   string
		want Root // Raw is filled in from in
		str  string
	}{
		// Local paths.
		{"/srv/data", Root{Local: true, Path: "/srv/data"}, "/srv/data"},
		{"/srv/data/", Root{Local: true, Path: "/srv/data"}, "/srv/data"},
		{"docs", Root{Local: true, Path: "docs"}, "docs"},
		{".", Root{Local: true, Path: "."}, "."},
		{"./a:b", Root{Local: true, Path: "a:b"}, "a:b"},
		{"/x:y", Root{Local: true, Path: "/x:y"}, "/x:y"},
		{"a/b:c", Root{Local: true, Path: "a/b:c"}, "a/b:c"},
		{"~/sync:x", Root{Local: true, Path: "~/sync:x"}, "~/sync:x"},
		{"../up", Root{Local: true, Path: "../up"}, "../up"},
		{"dir\nname", Root{Local: true, Path: "dir\nname"}, `dir\nname`},
		{"/a/b://c", Root{Local: true, Path: "/a/b:/c"}, "/a/b:/c"},

		// scp-like.
		{"web2:docs", Root{Host: "web2", Path: "docs", HomeRelative: true}, "web2:docs"},
		{"web2:", Root{Host: "web2", Path: ".", HomeRelative: true}, "web2:"},
		{"web2:~", Root{Host: "web2", Path: ".", HomeRelative: true}, "web2:"},
		{"web2:~/docs/", Root{Host: "web2", Path: "docs", HomeRelative: true}, "web2:docs"},
		{"web2:/srv/x", Root{Host: "web2", Path: "/srv/x"}, "web2:/srv/x"},
		{"ann@web2:/srv/x", Root{User: "ann", Host: "web2", Path: "/srv/x"}, "ann@web2:/srv/x"},
		{"ann@corp@web2:d", Root{User: "ann@corp", Host: "web2", Path: "d", HomeRelative: true}, "ann@corp@web2:d"},
		{"10.0.0.7:d", Root{Host: "10.0.0.7", Path: "d", HomeRelative: true}, "10.0.0.7:d"},
		{"[::1]:d", Root{Host: "::1", Path: "d", HomeRelative: true}, "[::1]:d"},
		{"ann@[fe80::1%eth0]:/d", Root{User: "ann", Host: "fe80::1%eth0", Path: "/d"}, "ann@[fe80::1%eth0]:/d"},
		{"web2:a:b", Root{Host: "web2", Path: "a:b", HomeRelative: true}, "web2:a:b"},
		{"web2:./~x", Root{Host: "web2", Path: "~x", HomeRelative: true}, "web2:~/~x"},
		{"my_host.example.com:d", Root{Host: "my_host.example.com", Path: "d", HomeRelative: true}, "my_host.example.com:d"},

		// ssh:// URLs.
		{"ssh://web2/srv/x", Root{Host: "web2", Path: "/srv/x"}, "ssh://web2/srv/x"},
		{"SSH://web2/srv/x", Root{Host: "web2", Path: "/srv/x"}, "ssh://web2/srv/x"},
		{"ssh://ann@web2:2222/srv/x/", Root{User: "ann", Host: "web2", Port: 2222, Path: "/srv/x"}, "ssh://ann@web2:2222/srv/x"},
		{"ssh://web2/~/docs", Root{Host: "web2", Path: "docs", HomeRelative: true}, "ssh://web2/~/docs"},
		{"ssh://web2/~", Root{Host: "web2", Path: ".", HomeRelative: true}, "ssh://web2/~"},
		{"ssh://web2/~/", Root{Host: "web2", Path: ".", HomeRelative: true}, "ssh://web2/~"},
		{"ssh://web2/", Root{Host: "web2", Path: "/"}, "ssh://web2/"},
		{"ssh://web2//srv", Root{Host: "web2", Path: "/srv"}, "ssh://web2/srv"},
		{"ssh://[::1]/d", Root{Host: "::1", Path: "/d"}, "ssh://[::1]/d"},
		{"ssh://ann@[::1]:22/d", Root{User: "ann", Host: "::1", Port: 22, Path: "/d"}, "ssh://ann@[::1]:22/d"},
		{"ssh://web2/a b%20c", Root{Host: "web2", Path: "/a b%20c"}, "ssh://web2/a b%20c"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRoot(tt.in)
			if err != nil {
				t.Fatalf("ParseRoot(%q): %v", tt.in, err)
			}
			want := tt.want
			want.Raw = tt.in
			if got != want {
				t.Errorf("ParseRoot(%q) = %+v, want %+v", tt.in, got, want)
			}
			if s := got.String(); s != tt.str {
				t.Errorf("ParseRoot(%q).String() = %q, want %q", tt.in, s, tt.str)
			}
		})
	}
}

func TestParseRootErrors(t *testing.T) {
	tests := []struct {
		in      string
		want    []string // substrings of the message
		notWant string
	}{
		{"", []string{"empty root"}, ""},
		{"a\x00b", []string{"NUL"}, ""},
		{"a b:c", []string{`"a b:c"`, "not a valid host name", "./a b:c"}, ""},
		{":path", []string{"no host name"}, ""},
		{"@web2:d", []string{"no user name"}, ""},
		{"-oProxyCommand=x:d", []string{"not a valid host name"}, ""},
		{"-ann@web2:d", []string{"starting with '-'"}, ""},
		{"web2:~bob/d", []string{"~user"}, ""},
		{"web2:a\nb", []string{"control character"}, ""},
		{"[::1:d", []string{"without ']'"}, ""},
		{"[::1]d:x", []string{"':' right after"}, ""},
		{"[web2]:d", []string{"only for IPv6"}, ""},
		{"[::1/x]:d", []string{"not a valid IPv6"}, ""},
		{"x[::1]:d", []string{"not user@"}, ""},
		{"ftp://web2/d", []string{"ftp:// is not supported"}, ""},
		{"ssh://web2", []string{"has no path"}, ""},
		{"ssh://", []string{"has no path"}, ""},
		{"ssh:///d", []string{"no host name"}, ""},
		{"ssh://web2:/d", []string{"no port number"}, ""},
		{"ssh://web2:0/d", []string{"from 1 to 65535"}, ""},
		{"ssh://web2:70000/d", []string{"from 1 to 65535"}, ""},
		{"ssh://web2:+22/d", []string{"from 1 to 65535"}, ""},
		{"ssh://web2:ssh/d", []string{"from 1 to 65535"}, ""},
		{"ssh://::1/d", []string{"without brackets"}, ""},
		{"ssh://[::1/d", []string{"without ']'"}, ""},
		{"ssh://[::1]x/d", []string{"not :port"}, ""},
		{"ssh://[::1]:/d", []string{"no port number"}, ""},
		{"ssh://ann:hunter2@web2/d", []string{"password", "ann:xxxxx@web2"}, "hunter2"},
		{"ssh://web2/~bob/d", []string{"~user"}, ""},
		{"ssh://web2/a\tb", []string{"control character"}, ""},
		{"ssh://we b2/d", []string{"not a valid host name"}, ""},
		{"ssh://@web2/d", []string{"no user name"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRoot(tt.in)
			if err == nil {
				t.Fatalf("ParseRoot(%q) = %+v, want an error", tt.in, got)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("ParseRoot(%q) error %q does not contain %q", tt.in, msg, w)
				}
			}
			if tt.notWant != "" && strings.Contains(msg, tt.notWant) {
				t.Errorf("ParseRoot(%q) error %q leaks %q", tt.in, msg, tt.notWant)
			}
			if strings.ContainsAny(msg, "\x00\n\t") {
				t.Errorf("ParseRoot(%q) error %q holds a control character", tt.in, msg)
			}
		})
	}
}

func TestRootStringBuilt(t *testing.T) {
	// Roots built in code (no Raw) show in the ssh:// form.
	tests := []struct {
		r    Root
		want string
	}{
		{Root{Host: "h", Path: "/d"}, "ssh://h/d"},
		{Root{Host: "h", Port: 2222, Path: "d", HomeRelative: true}, "ssh://h:2222/~/d"},
		{Root{Host: "::1", User: "u", Path: "/"}, "ssh://u@[::1]/"},
		{Root{Host: "h", Port: 2222, Path: "d", HomeRelative: true, Raw: "h:d"}, "ssh://h:2222/~/d"},
		{Root{Local: true, Path: "a\x1b[2Jb"}, `a\x1b[2Jb`},
		// Absolute directories named like the home (found by FuzzParseRoot).
		{Root{Host: "h", Path: "/~"}, "ssh://h//~"},
		{Root{Host: "h", Path: "/~x/y"}, "ssh://h//~x/y"},
		{Root{Host: "h", Path: "/~", Raw: "h:/~"}, "h:/~"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.r, got, tt.want)
		}
	}
}

// FuzzParseRoot checks that ParseRoot never panics, that what it accepts is
// well formed, and that a remote root's String parses back to the same root.
func FuzzParseRoot(f *testing.F) {
	for _, s := range []string{
		"/srv/data", "./a:b", "web2:docs", "ann@web2:/x", "[::1]:d",
		"ann@[fe80::1%eth0]:/d", "ssh://ann@web2:2222/srv", "ssh://web2/~/d",
		"ssh://[::1]:22/~", "ssh://a:b@c/d", "web2:~", "ftp://x/y", "web2:./~x",
		"ssh://h//", "h:..", "~x:y",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRoot(s)
		if err != nil {
			if msg := err.Error(); strings.ContainsAny(msg, "\x00\n\r\x1b") {
				t.Fatalf("ParseRoot(%q) error %q holds a control character", s, msg)
			}
			return
		}
		if r.Raw != s {
			t.Fatalf("ParseRoot(%q).Raw = %q", s, r.Raw)
		}
		if r.Path == "" {
			t.Fatalf("ParseRoot(%q) has an empty Path: %+v", s, r)
		}
		str := r.String()
		if strings.ContainsAny(str, "\x00\n\r\x1b") {
			t.Fatalf("ParseRoot(%q).String() = %q holds a control character", s, str)
		}
		if r.Local {
			if r.Host != "" || r.User != "" || r.Port != 0 || r.HomeRelative {
				t.Fatalf("ParseRoot(%q) local root with remote fields: %+v", s, r)
			}
			return
		}
		if r.Host == "" || r.Port < 0 || r.Port > 65535 {
			t.Fatalf("ParseRoot(%q) = %+v: bad host or port", s, r)
		}
		if r.HomeRelative == strings.HasPrefix(r.Path, "/") {
			t.Fatalf("ParseRoot(%q) = %+v: HomeRelative disagrees with Path", s, r)
		}
		if strings.Contains(r.User, ":") || strings.ContainsAny(r.Host, "@/[] ") {
			t.Fatalf("ParseRoot(%q) = %+v: bad user or host", s, r)
		}
		if !utf8.ValidString(str) || strings.Contains(str, `\`) {
			return // String escaped something; it is for display only
		}
		back, err := ParseRoot(str)
		if err != nil {
			t.Fatalf("ParseRoot(%q).String() = %q, which does not parse: %v", s, str, err)
		}
		back.Raw, r.Raw = "", ""
		if back != r {
			t.Fatalf("ParseRoot(%q) = %+v, but its String %q parses to %+v", s, r, str, back)
		}
	})
}
