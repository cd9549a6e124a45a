package runstate

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	state, start, err := parseStat([]byte("123 (we ird) name)) S 1 123 123 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 100 18446744073709551615\n"))
	if err != nil || state != 'S' || start != 98765 {
		t.Errorf("got %c %d, %v; want S 98765", state, start, err)
	}
	for _, bad := range []string{"123 (x) S 1", "no paren", "1 (x) SS 0 1 1 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 5 1000 100\n", "1 (x) S 0 1 1 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 -5 1000 100\n"} {
		if _, _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if p, err := inspect(os.Getpid()); err != nil || p.start == 0 || p.exited {
		t.Errorf("own stat: %+v, %v", p, err)
	}
}

// TestZombieIsDead: a manager that has exited but whose parent has not
// reaped it yet still holds its pid, with its start time; it is dead.
func TestZombieIsDead(t *testing.T) {
	cmd := exec.Command("sleep", "0.1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	p, err := inspect(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	owner := Owner{PID: cmd.Process.Pid, Start: p.start}
	if l := owner.Check(); !l.Alive {
		t.Fatalf("running child: %v", l)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(owner.PID) + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		if state, _, _ := parseStat(data); state == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("child never became a zombie")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if l := owner.Check(); l.Alive || !strings.Contains(l.Reason, "has exited") {
		t.Errorf("zombie: %v, want dead, saying it has exited", l)
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1 (init) S 0 1 1 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 5 1000 100\n"))
	f.Add([]byte("1 (a) b) S"))
	f.Fuzz(func(t *testing.T, data []byte) { _, _, _ = parseStat(data) })
}
