package archive

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestAcquireLockZombieHolder: a lock whose holder has exited but was not
// reaped (an orphaned concord serve under a container init that does not
// reap) is stale and taken over.
func TestAcquireLockZombieHolder(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc on this system")
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command("true")
	if err := child.Start(); err != nil {
		t.Skipf("cannot start a child process: %v", err)
	}
	pid := child.Process.Pid
	defer child.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for !Zombie(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d did not become a zombie", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	path := filepath.Join(t.TempDir(), "ar.lock")
	if err := os.WriteFile(path, []byte(fmt.Sprintf("%d %s\n", pid, host)), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := AcquireLock(path)
	if err != nil {
		t.Fatalf("a lock held by a zombie must be taken over: %v", err)
	}
	l.Release()
	if alive(os.Getpid()) != true {
		t.Fatal("this process is not alive, says alive")
	}
}
