package main

import (
	"bytes"
	"io"
	"net"
	"testing"
)

func TestRelayCountsBothDirections(t *testing.T) {
	tests := []struct {
		name     string
		up, down int
	}{
		{"empty", 0, 0},
		{"small", 10, 3},
		{"large", 1 << 20, 300000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The server reads everything, then answers with tc.down bytes.
			srv, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			go func() {
				c, err := srv.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				_, _ = io.Copy(io.Discard, c)
				_, _ = c.Write(bytes.Repeat([]byte("d"), tc.down))
			}()
			front, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer front.Close()
			type counts struct{ up, down int64 }
			got := make(chan counts, 1)
			go func() {
				c, err := front.Accept()
				if err != nil {
					got <- counts{-1, -1}
					return
				}
				u, d := relay(c.(*net.TCPConn), srv.Addr().String())
				got <- counts{u, d}
			}()
			c, err := net.Dial("tcp", front.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(bytes.Repeat([]byte("u"), tc.up)); err != nil {
				t.Fatal(err)
			}
			_ = c.(*net.TCPConn).CloseWrite()
			back, err := io.ReadAll(c)
			c.Close()
			if err != nil {
				t.Fatal(err)
			}
			if len(back) != tc.down {
				t.Errorf("client received %d bytes, want %d", len(back), tc.down)
			}
			if g := <-got; g.up != int64(tc.up) || g.down != int64(tc.down) {
				t.Errorf("relay counted %d up, %d down; want %d, %d", g.up, g.down, tc.up, tc.down)
			}
		})
	}
}
