package sshx

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestResolve(t *testing.T) {
	home := t.TempDir()
	cfgFile := writeFile(t, filepath.Join(home, "cfg"), `
Host web2
  HostName 10.0.0.2
  Port 2222
  User deploy
  IdentityFile ~/.ssh/deploy_key
  IdentityFile %d/keys/%r@%h
  UserKnownHostsFile ~/.ssh/kh1 ~/.ssh/kh2
  StrictHostKeyChecking accept-new
  ProxyJump bastion, ann@gate:2200
  ConnectTimeout 3
  ServerAliveInterval 5
  ServerAliveCountMax 4
  HostKeyAlias web2-key

Host *.corp
  HostName %h.example.net
  IdentitiesOnly yes

Host *
  StrictHostKeyChecking no
  User fallback
`)
	cfg, err := loadConfig(cfgFile, home)
	if err != nil {
		t.Fatal(err)
	}
	h, err := cfg.resolve("web2", "", 0, home)
	if err != nil {
		t.Fatal(err)
	}
	want := &hostConfig{
		alias: "web2", hostName: "10.0.0.2", port: 2222, user: "deploy",
		identityFiles:    []string{filepath.Join(home, ".ssh/deploy_key"), home + "/keys/deploy@10.0.0.2"},
		identityExplicit: true,
		userKnownHosts:   []string{filepath.Join(home, ".ssh/kh1"), filepath.Join(home, ".ssh/kh2")},
		globalKnownHosts: []string{"/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"},
		hostKeyAlias:     "web2-key",
		strict:           "accept-new",
		proxyJump:        []string{"bastion", "ann@gate:2200"},
		connectTimeout:   3 * time.Second,
		aliveInterval:    5 * time.Second,
		aliveCountMax:    4,
	}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("resolve(web2) =\n%+v\nwant\n%+v", h, want)
	}
	if got := h.knownHostsAddr(); got != "web2-key:2222" {
		t.Errorf("knownHostsAddr = %q", got)
	}

	// The root's user and port win over the file; defaults fill the rest.
	h, err = cfg.resolve("db.corp", "ann", 22, home)
	if err != nil {
		t.Fatal(err)
	}
	if h.hostName != "db.corp.example.net" || h.user != "ann" || h.port != 22 || !h.identitiesOnly || h.strict != "no" {
		t.Errorf("resolve(db.corp) = %+v", h)
	}
	if h.identityExplicit || len(h.identityFiles) != 3 || !strings.HasSuffix(h.identityFiles[0], "id_ed25519") {
		t.Errorf("default identity files = %v", h.identityFiles)
	}
	if h.display() != "db.corp (db.corp.example.net)" {
		t.Errorf("display = %q", h.display())
	}
}

func TestResolveErrors(t *testing.T) {
	home := t.TempDir()
	tests := []struct {
		name, config, want string
	}{
		{"port", "Host x\n  Port http\n", `Port "http" is not a number`},
		{"strict", "Host x\n  StrictHostKeyChecking maybe\n", "StrictHostKeyChecking"},
		{"timeout", "Host x\n  ConnectTimeout soon\n", "ConnectTimeout"},
		{"proxycommand", "Host x\n  ProxyCommand nc %h %p\n", "use ProxyJump"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := writeFile(t, filepath.Join(home, tt.name), tt.config)
			cfg, err := loadConfig(f, home)
			if err != nil {
				t.Fatal(err)
			}
			_, err = cfg.resolve("x", "", 0, home)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("resolve: %v, want an error containing %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "x") {
				t.Errorf("error %q does not name the host", err)
			}
		})
	}
	if _, err := loadConfig(filepath.Join(home, "missing"), home); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing -F file: %v", err)
	}
	bad := writeFile(t, filepath.Join(home, "bad"), "Match exec true\n  User x\n")
	if _, err := loadConfig(bad, home); err == nil || !strings.Contains(err.Error(), "bad") {
		t.Errorf("unsupported Match: %v", err)
	}
	if c, err := loadConfig("none", home); err != nil || len(c.files) != 0 {
		t.Errorf("none: %v %v", c, err)
	}
}

func TestParseHop(t *testing.T) {
	tests := []struct {
		in         string
		user, host string
		port       int
		bad        bool
	}{
		{in: "bastion", host: "bastion"},
		{in: "ann@gate:2200", user: "ann", host: "gate", port: 2200},
		{in: "ssh://ann@gate:2200", user: "ann", host: "gate", port: 2200},
		{in: "[::1]:22", host: "::1", port: 22},
		{in: "[::1]", host: "::1"},
		{in: "gate:0", bad: true},
		{in: "gate:x", bad: true},
		{in: "-oX", bad: true},
		{in: "", bad: true},
	}
	for _, tt := range tests {
		user, host, port, err := parseHop(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("parseHop(%q) = %q %q %d, want an error", tt.in, user, host, port)
			}
			continue
		}
		if err != nil || user != tt.user || host != tt.host || port != tt.port {
			t.Errorf("parseHop(%q) = %q %q %d %v", tt.in, user, host, port, err)
		}
	}
}

func TestPlatform(t *testing.T) {
	tests := []struct {
		in, goos, goarch string
		ok               bool
	}{
		{"Linux x86_64", "linux", "amd64", true},
		{"Linux aarch64", "linux", "arm64", true},
		{"Darwin arm64", "darwin", "arm64", true},
		{"FreeBSD amd64", "freebsd", "amd64", true},
		{"Linux armv7l", "linux", "arm", true},
		{"Linux i686", "linux", "386", true},
		{"Linux riscv64", "linux", "riscv64", true},
		{"SunOS sun4u", "", "", false},
		{"Linux mips", "", "", false},
		{"", "", "", false},
		{"Linux x86_64 extra", "", "", false},
	}
	for _, tt := range tests {
		goos, goarch, ok := platform(tt.in)
		if goos != tt.goos || goarch != tt.goarch || ok != tt.ok {
			t.Errorf("platform(%q) = %q %q %v", tt.in, goos, goarch, ok)
		}
	}
}

func TestCacheVersion(t *testing.T) {
	tests := map[string]string{
		"1.2.3":             "1.2.3",
		"v0.1.0-rc1+build5": "v0.1.0-rc1+build5",
		"(devel)":           "_devel_",
		"../../etc":         "_.._etc",
		"..":                "unknown",
		"":                  "unknown",
		"a b/c":             "a_b_c",
	}
	for in, want := range tests {
		if got := cacheVersion(in); got != want {
			t.Errorf("cacheVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestShCommandRefusesUnsafeScripts(t *testing.T) {
	for _, s := range []string{"echo 'x'", `echo \x`, "echo !x", "a\nb"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("shCommand accepted %q", s)
				}
			}()
			shCommand("n", s)
		}()
	}
	for _, s := range []string{lookScript, uploadScript} {
		shCommand("n", s) // must not panic
	}
}

func TestParseLook(t *testing.T) {
	out := "Welcome!\nconcord-probe cached /h/.cache/concord/1/concord\nconcord-probe path /usr/bin/concord\nconcord-probe uname Linux x86_64 \n"
	cached, inPath, uname := parseLook([]byte(out))
	if cached != "/h/.cache/concord/1/concord" || inPath != "/usr/bin/concord" || uname != "Linux x86_64" {
		t.Errorf("parseLook = %q %q %q", cached, inPath, uname)
	}
	if c, p, u := parseLook([]byte("concord-probe uname Darwin arm64\n")); c != "" || p != "" || u != "Darwin arm64" {
		t.Errorf("parseLook(uname only) = %q %q %q", c, p, u)
	}
}

// FuzzRemoteReplies feeds arbitrary remote output to the parsers of what
// the remote says during the bootstrap: they must not panic, and what
// they return must come from the input.
func FuzzRemoteReplies(f *testing.F) {
	f.Add([]byte("concord-probe cached /x\nconcord-probe path /y\nconcord-probe uname Linux x86_64\n"))
	f.Add([]byte("noise\r\nconcord-probe uname \n"))
	f.Add([]byte("concord-probe uname Linux\x00 aarch64"))
	f.Fuzz(func(t *testing.T, out []byte) {
		cached, inPath, uname := parseLook(out)
		for _, v := range []string{cached, inPath, uname} {
			if !strings.Contains(string(out), v) {
				t.Fatalf("parseLook returned %q, not in the input", v)
			}
		}
		goos, goarch, ok := platform(uname)
		if ok != (goos != "" && goarch != "") {
			t.Fatalf("platform(%q) = %q %q %v", uname, goos, goarch, ok)
		}
	})
}

func FuzzParseHop(f *testing.F) {
	for _, s := range []string{"bastion", "ann@gate:2200", "ssh://[::1]:22", "[::1]", "a@b@c:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		user, host, port, err := parseHop(s)
		if err != nil {
			return
		}
		if host == "" || port < 0 || port > 65535 || strings.ContainsAny(host, "/ \t") || strings.HasPrefix(host, "-") {
			t.Fatalf("parseHop(%q) = %q %q %d", s, user, host, port)
		}
	})
}
