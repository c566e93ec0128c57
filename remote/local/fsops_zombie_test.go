package local

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/concord-sync/concord/archive"
	"github.com/concord-sync/concord/archive/scan"
)

// TestTempOwnerZombie: the temporary file of a process that has exited
// but was not reaped (a zombie) belongs to a dead run; a live process's
// does not.
func TestTempOwnerZombie(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc on this system")
	}
	child := exec.Command("true")
	if err := child.Start(); err != nil {
		t.Skipf("cannot start a child process: %v", err)
	}
	pid := child.Process.Pid
	defer child.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for !archive.Zombie(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d did not become a zombie", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if name := fmt.Sprintf("%s%d-1-2", scan.TempPrefix, pid); !tempOwnerDead(name) {
		t.Errorf("%s: the owner is a zombie, so dead", name)
	}
	if name := fmt.Sprintf("%s%d-1-2", scan.TempPrefix, os.Getppid()); tempOwnerDead(name) {
		t.Errorf("%s: the owner (this test's parent) is alive", name)
	}
}
