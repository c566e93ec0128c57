package wire

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/delta"
)

func TestClientHandshake(t *testing.T) {
	withVersion := func(v uint32) []byte { return binary.BigEndian.AppendUint32([]byte(Magic), v) }
	tests := []struct {
		name   string
		server []byte // what the remote writes before closing
		check  func(t *testing.T, err error)
	}{
		{"shell noise", append([]byte("Welcome to web1!\nLast login: yesterday\n"), hello()...), func(t *testing.T, err error) {
			var ne *NoiseError
			if !errors.As(err, &ne) {
				t.Fatalf("= %v, want a NoiseError", err)
			}
			for _, want := range []string{"Welcome to web1!", "shell startup files", "print to stdout"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message %q lacks %q", err, want)
				}
			}
		}},
		{"noise then end", []byte("bash: warning\n"), func(t *testing.T, err error) {
			if !errors.As(err, new(*NoiseError)) {
				t.Fatalf("= %v, want a NoiseError", err)
			}
		}},
		{"half a magic", []byte("CONC"), func(t *testing.T, err error) {
			if !errors.As(err, new(*NoiseError)) {
				t.Fatalf("= %v, want a NoiseError", err)
			}
		}},
		{"nothing", nil, func(t *testing.T, err error) {
			if !errors.Is(err, ErrNoPeer) {
				t.Fatalf("= %v, want ErrNoPeer", err)
			}
		}},
		{"newer version", withVersion(ProtocolVersion + 1), func(t *testing.T, err error) {
			var ve *VersionError
			if !errors.As(err, &ve) || ve.Local != ProtocolVersion || ve.Remote != ProtocolVersion+1 {
				t.Fatalf("= %v, want a VersionError", err)
			}
		}},
		{"older version", withVersion(0), func(t *testing.T, err error) {
			if !errors.As(err, new(*VersionError)) {
				t.Fatalf("= %v, want a VersionError", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := net.Pipe()
			done := make(chan struct{})
			go func() {
				defer close(done)
				go io.Copy(io.Discard, b)
				b.Write(tt.server)
				b.Close()
			}()
			_, err := Connect(context.Background(), a)
			<-done
			if err == nil {
				t.Fatal("Connect succeeded")
			}
			if !errors.Is(err, remote.ErrFatal) {
				t.Errorf("handshake error %v does not match ErrFatal", err)
			}
			tt.check(t, err)
		})
	}
}

func TestServerHandshake(t *testing.T) {
	tests := []struct {
		name   string
		client []byte
		check  func(error) bool
	}{
		{"other version", binary.BigEndian.AppendUint32([]byte(Magic), ProtocolVersion+1), func(err error) bool { return errors.As(err, new(*VersionError)) }},
		{"not concord", []byte("GET / HTTP/1.1\r\n\r\n"), func(err error) bool { return errors.Is(err, ErrProtocol) }},
		{"nothing", nil, func(err error) bool { return errors.Is(err, io.EOF) }},
		{"no setup", hello(), func(err error) bool { return err != nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := net.Pipe()
			served := make(chan error, 1)
			ep := newFake()
			go func() { served <- Serve(context.Background(), b, ep); b.Close() }()
			go io.Copy(io.Discard, a)
			a.Write(tt.client)
			a.Close()
			if err := <-served; !tt.check(err) {
				t.Fatalf("Serve = %v", err)
			}
			if ep.calls.Load() != 0 {
				t.Fatal("the endpoint was called before a handshake")
			}
		})
	}
}

// FuzzHandshake feeds arbitrary bytes to both handshake readers: they must
// accept exactly the magic and version, and never panic.
func FuzzHandshake(f *testing.F) {
	f.Add(hello())
	f.Add([]byte("Welcome\n" + Magic))
	f.Add([]byte(Magic[:5]))
	f.Fuzz(func(t *testing.T, data []byte) {
		err := readServerHello(bufio.NewReader(bytes.NewReader(data)))
		if (err == nil) != bytes.HasPrefix(data, hello()) {
			t.Fatalf("readServerHello(%q) = %v", data, err)
		}
		err = readClientHello(bytes.NewReader(data))
		if (err == nil) != bytes.HasPrefix(data, hello()) {
			t.Fatalf("readClientHello(%q) = %v", data, err)
		}
	})
}

// TestWireConstants pins the numbers docs/protocol.md documents: changing
// one needs a new ProtocolVersion and a new page.
func TestWireConstants(t *testing.T) {
	if got := hello(); !bytes.Equal(got, []byte("CONCORD\x00\x00\x00\x00\x07")) {
		t.Errorf("hello = %q", got)
	}
	types := []struct {
		t    msgType
		want uint8
	}{
		{tHello, 1}, {tOpen, 2}, {tScan, 3}, {tArchiveList, 4}, {tStat, 5}, {tList, 6},
		{tReadFile, 7}, {tApply, 8}, {tCommit, 9}, {tClose, 10}, {tSignature, 11}, {tReadDelta, 12}, {tPutBatch, 13},
		{tSetup, 32}, {tData, 33}, {tEnd, 34}, {tItems, 35}, {tCredit, 36}, {tCancel, 37},
		{tProgress, 38}, {tReply, 39}, {tError, 40},
	}
	for _, tt := range types {
		if uint8(tt.t) != tt.want {
			t.Errorf("%s = %d, documented as %d", tt.t, tt.t, tt.want)
		}
	}
	if MaxFrame != 4<<20 || ChunkSize != 256<<10 || window != 4 || maxBatchItems != 4096 ||
		maxInflight != 1024 || maxBigInflight != 16 || serverInflight != 2048 {
		t.Error("a documented limit changed")
	}
	if maxInflight > serverInflight {
		t.Errorf("clients may send %d requests at once, servers run %d", maxInflight, serverInflight)
	}
	classes := []error{remote.ErrFatal, remote.ErrLocked, remote.ErrChanged, remote.ErrUnsafePath, context.Canceled, context.DeadlineExceeded, delta.ErrCorrupt, remote.ErrBlocked, remote.ErrMismatch}
	if len(errClasses) != len(classes) {
		t.Errorf("%d error classes, %d documented", len(errClasses), len(classes))
	}
	for i, c := range classes {
		if errClasses[i] != c {
			t.Errorf("error class bit %d is %v, documented as %v", 1<<i, errClasses[i], c)
		}
	}
}
