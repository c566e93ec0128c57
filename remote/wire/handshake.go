package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// ProtocolVersion is the version of the protocol this package speaks. Two
// programs talk only if their versions are equal; any change to the
// framing, a message or a limit bumps it (docs/protocol.md).
const ProtocolVersion = 7

// Magic opens the stream each side writes, followed by the protocol version
// as a 4-byte big-endian number.
const Magic = "CONCORD\x00"

// helloLen is the length of the magic and the version.
const helloLen = len(Magic) + 4

// maxNoiseShown bounds how much shell noise an error message quotes.
const maxNoiseShown = 200

// ErrNoPeer is returned when the connection ends before the peer wrote
// anything: typically concord is not installed on the remote, or failed to
// start (its standard error says why).
var ErrNoPeer = errors.New("the remote closed the connection before speaking the concord protocol (is concord installed there?)")

// VersionError reports a peer speaking another protocol version. The
// client can then upload a matching binary and try again.
type VersionError struct {
	// Local is this program's version, Remote the peer's.
	Local, Remote uint32
}

// Error names both versions and what to do.
func (e *VersionError) Error() string {
	return fmt.Sprintf("the remote concord speaks protocol version %d, this one speaks %d; install the same concord version on both sides", e.Remote, e.Local)
}

// NoiseError reports bytes received before the peer's magic: something on
// the remote, nearly always a shell startup file, printed to standard
// output before concord started.
type NoiseError struct {
	// Noise holds the first bytes received (at most a couple hundred).
	Noise []byte
}

// Error quotes the noise and says how to fix it.
func (e *NoiseError) Error() string {
	return fmt.Sprintf("the remote printed %s before concord started: the remote's shell startup files (~/.bashrc, ~/.profile, /etc/profile.d, ...) print to stdout; make them print nothing for non-interactive shells, or send it to stderr",
		strconv.Quote(string(e.Noise)))
}

// hello returns the bytes each side writes first.
func hello() []byte {
	return binary.BigEndian.AppendUint32([]byte(Magic), ProtocolVersion)
}

// readServerHello reads the server's magic and version, failing with a
// NoiseError at the first byte that does not belong there.
func readServerHello(br *bufio.Reader) error {
	var got [helloLen]byte
	for i := range got {
		b, err := br.ReadByte()
		if err != nil {
			if err == io.EOF && i == 0 {
				return ErrNoPeer
			}
			if err == io.EOF {
				return &NoiseError{Noise: bytes.Clone(got[:i])}
			}
			return fmt.Errorf("read the remote's handshake: %w", err)
		}
		got[i] = b
		if i < len(Magic) && b != Magic[i] {
			// Quote what has come so far and what is already buffered.
			noise := append(bytes.Clone(got[:i+1]), peekBuffered(br, maxNoiseShown)...)
			return &NoiseError{Noise: noise[:min(len(noise), maxNoiseShown)]}
		}
	}
	if v := binary.BigEndian.Uint32(got[len(Magic):]); v != ProtocolVersion {
		return &VersionError{Local: ProtocolVersion, Remote: v}
	}
	return nil
}

func peekBuffered(br *bufio.Reader, n int) []byte {
	p, _ := br.Peek(min(n, br.Buffered()))
	return p
}

// readClientHello reads the client's magic and version.
func readClientHello(r io.Reader) error {
	var got [helloLen]byte
	if _, err := io.ReadFull(r, got[:]); err != nil {
		if err == io.EOF {
			return fmt.Errorf("the client closed the connection before the handshake: %w", err)
		}
		return fmt.Errorf("read the client's handshake: %w", err)
	}
	if string(got[:len(Magic)]) != Magic {
		return fmt.Errorf("%w: the client did not start with the concord magic bytes (got %s)", ErrProtocol, strconv.Quote(string(got[:])))
	}
	if v := binary.BigEndian.Uint32(got[len(Magic):]); v != ProtocolVersion {
		return &VersionError{Local: ProtocolVersion, Remote: v}
	}
	return nil
}
