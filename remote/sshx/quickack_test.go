package sshx

import (
	"io"
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// quickAckMode reports whether the kernel acknowledges conn's received data
// at once (TCP_QUICKACK reads back as 1) or delays it (0).
func quickAckMode(t *testing.T, conn net.Conn) int {
	t.Helper()
	raw, err := conn.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	v := -1
	raw.Control(func(fd uintptr) { v, err = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK) })
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestQuickAck checks that a read through withQuickAck leaves the socket
// acknowledging at once, where a plain connection in a request-reply
// exchange has the kernel delay its acknowledgements (and sshd's second
// small packet wait 40 ms for them).
func TestQuickAck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// An echo server, with Nagle's algorithm on like sshd's.
			c.(*net.TCPConn).SetNoDelay(false)
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	exchange := func(conn net.Conn) int {
		buf := make([]byte, 64)
		for range 8 {
			if _, err := conn.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(conn, buf[:4]); err != nil {
				t.Fatal(err)
			}
		}
		return quickAckMode(t, conn)
	}
	dial := func() *net.TCPConn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.TCPConn)
	}
	if got := exchange(dial()); got != 0 {
		t.Skipf("this kernel does not delay acknowledgements in a request-reply exchange (TCP_QUICKACK reads %d): nothing to check", got)
	}
	plain := dial()
	wrapped := withQuickAck(plain)
	if _, ok := wrapped.(*quickAckConn); !ok {
		t.Fatalf("withQuickAck(%T) = %T", plain, wrapped)
	}
	if got := exchange(wrapped); got != 1 {
		t.Errorf("after reads through withQuickAck TCP_QUICKACK reads %d, want 1", got)
	}
	// Not a TCP connection (a ProxyJump channel): left alone.
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if withQuickAck(a) != a {
		t.Errorf("withQuickAck wrapped a %T", a)
	}
}
