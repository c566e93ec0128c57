// Command tcpcount is a loopback TCP relay that counts the bytes it
// forwards, so that bench/run.sh can tell how many bytes a remote sync put
// on the wire without counting other traffic on the interface.
//
// Usage:
//
//	tcpcount -to 127.0.0.1:PORT -port-file FILE -log FILE
//
// It listens on a free port of 127.0.0.1, writes that port number to
// -port-file, and forwards every connection to -to. When a connection has
// closed in both directions it appends one line to -log:
//
//	<bytes client to server> <bytes server to client>
//
// The counts are TCP payload bytes (the SSH stream), without TCP/IP
// headers. It runs until killed.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"
)

func main() {
	to := flag.String("to", "", "address to forward to (host:port)")
	portFile := flag.String("port-file", "", "file to write the listening port to")
	logFile := flag.String("log", "", "file to append one line per closed connection to")
	flag.Parse()
	if *to == "" || *portFile == "" || *logFile == "" {
		log.Fatal("tcpcount: want -to, -port-file and -log")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatalf("tcpcount: listen: %v", err)
	}
	out, err := os.OpenFile(*logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		log.Fatalf("tcpcount: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := os.WriteFile(*portFile, fmt.Appendf(nil, "%d\n", port), 0o644); err != nil {
		log.Fatalf("tcpcount: %v", err)
	}
	var mu sync.Mutex
	for {
		c, err := l.Accept()
		if err != nil {
			log.Fatalf("tcpcount: accept: %v", err)
		}
		go func() {
			up, down := relay(c.(*net.TCPConn), *to)
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(out, "%d %d\n", up, down)
		}()
	}
}

// relay forwards c to the address to until both directions are closed and
// returns the bytes copied each way.
func relay(c *net.TCPConn, to string) (up, down int64) {
	defer c.Close()
	s, err := net.Dial("tcp", to)
	if err != nil {
		log.Printf("tcpcount: dial %s: %v", to, err)
		return 0, 0
	}
	srv := s.(*net.TCPConn)
	defer srv.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		down, _ = io.Copy(c, srv)
		_ = c.CloseWrite()
	}()
	up, _ = io.Copy(srv, c)
	_ = srv.CloseWrite()
	wg.Wait()
	return up, down
}
