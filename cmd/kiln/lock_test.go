package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kiln-cdp/kiln/store/sqlite"
)

// buildKiln builds the kiln binary into the test's temporary directory.
func buildKiln(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kiln")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building kiln: %v\n%s", err, out)
	}
	return bin
}

// lockedStore is one backend for TestSecondServerIsRefused.
type lockedStore struct {
	flags    []string             // -db FILE or -postgres DSN
	refusal  func(pid int) string // the second server's error, naming the first
	snapshot func() string        // everything a second server could have written
}

// A second kiln serve on a store in use fails at once with an error naming
// the first, before it writes or delivers anything, even with its own
// port and with work waiting that it would otherwise do; the lock goes
// with the first server however it ends.
func TestSecondServerIsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	db := filepath.Join(t.TempDir(), "kiln.db")
	testSecondServerIsRefused(t, lockedStore{
		flags: []string{"-db", db},
		refusal: func(pid int) string {
			return fmt.Sprintf("kiln: %s is in use by another kiln process (pid %d); stop it first or use another -db", db, pid)
		},
		snapshot: func() string { return fileHashes(t, db, db+"-wal", db+"-shm") },
	})
}

func TestSecondServerIsRefusedOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	dsn := freshPostgres(t)
	host, _ := os.Hostname()
	testSecondServerIsRefused(t, lockedStore{
		flags: []string{"-postgres", dsn},
		refusal: func(pid int) string {
			return fmt.Sprintf("is in use by another kiln process (pid %d on %s); stop it first or use another -postgres database or schema", pid, host)
		},
		snapshot: func() string { return tableHashes(t, dsn) },
	})
}

func testSecondServerIsRefused(t *testing.T, st lockedStore) {
	bin := buildKiln(t)
	setSecretKey(t) // inherited by the servers, for the webhook's signing secret
	var received atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { received.Add(1) }))
	defer recv.Close()
	cli := func(args ...string) string {
		t.Helper()
		out, errs, err := kilnCmd(t, args...)
		if err != nil {
			t.Fatalf("kiln %s: %v\n%s", strings.Join(args, " "), err, errs)
		}
		return out
	}
	admin := strings.TrimSpace(cli(append([]string{"keys", "create", "-kind", "admin"}, st.flags...)...))

	// The first server, with a webhook for every new buyer.
	first := startServer(t, bin, st.flags)
	t.Setenv("KILN_URL", first.url)
	t.Setenv("KILN_ADMIN_KEY", admin)
	defs := filepath.Join(t.TempDir(), "buyers.kiln")
	os.WriteFile(defs, []byte(`segment buyers { count of "Order Completed" all time >= 1 }`), 0o644)
	cli("apply", "-f", defs)
	cli("destinations", "create", "-name", "hook", "-kind", "webhook", "-config", `{"url":"`+recv.URL+`"}`)
	cli("automations", "create", "-name", "welcome", "-segment", "buyers", "-on", "enter", "-destination", "hook")

	// Frozen, it holds the lock but processes nothing: 50 orders imported
	// now (an admin command works beside it) wait for a server to turn
	// them into 50 webhooks.
	first.signal(t, syscall.SIGSTOP)
	defer first.signal(t, syscall.SIGCONT)
	var csv strings.Builder
	csv.WriteString("customer,when,amount\n")
	for i := range 50 {
		fmt.Fprintf(&csv, "c%d,%s,%d\n", i, time.Now().UTC().Add(-time.Hour).Format(time.RFC3339), 10+i)
	}
	orders := filepath.Join(t.TempDir(), "orders.csv")
	os.WriteFile(orders, []byte(csv.String()), 0o644)
	cli(append([]string{"import", "-file", orders, "-quiet", "-source", "pos", "-event", "Order Completed",
		"-field", "userId=customer", "-field", "timestamp=when", "-field", "properties.revenue=amount:number"}, st.flags...)...)
	before := st.snapshot()

	// The second server, on a port of its own so that nothing but the
	// lock stops it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	second := exec.CommandContext(ctx, bin, append([]string{"serve", "-addr", freeAddr(t)}, st.flags...)...)
	var stderr bytes.Buffer
	second.Stderr = &stderr
	start := time.Now()
	err := second.Run()
	took := time.Since(start)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("second server: %v, want it to exit with an error\n%s", err, stderr.String())
	}
	if took > 2*time.Second {
		t.Errorf("second server took %v to fail, want it at once", took)
	}
	if want := st.refusal(first.cmd.Process.Pid); !strings.Contains(stderr.String(), want) {
		t.Errorf("second server said:\n%s\nwant:\n%s", stderr.String(), want)
	}
	if after := st.snapshot(); after != before {
		t.Errorf("the second server changed the store:\n%s\nwant\n%s", after, before)
	}
	if n := received.Load(); n != 0 {
		t.Errorf("%d webhooks delivered while only the refused server could have", n)
	}

	// Thawed, the first server delivers the waiting work: what the second
	// would have sent.
	first.signal(t, syscall.SIGCONT)
	for deadline := time.Now().Add(30 * time.Second); received.Load() < 50 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if n := received.Load(); n != 50 {
		t.Fatalf("the first server delivered %d webhooks, want 50", n)
	}

	// SIGKILL runs no shutdown code: the lock goes with the process.
	first.cmd.Process.Kill()
	first.cmd.Wait()
	next := startServer(t, bin, st.flags)
	// And an ordinary exit releases it too.
	next.stop(t)
	startServer(t, bin, st.flags).stop(t)
}

// server is a kiln serve process.
type server struct {
	cmd *exec.Cmd
	url string
}

// startServer runs kiln serve and waits until it answers; the test kills it
// at the end if it still runs.
func startServer(t *testing.T, bin string, flags []string) *server {
	t.Helper()
	addr := freeAddr(t)
	// The tests' webhook receivers are on loopback: allowed explicitly.
	cmd := exec.Command(bin, append([]string{"serve", "-addr", addr, "-log-level", "error", "-allow-private-destinations"}, flags...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGCONT)
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	waitHealthy(t, "http://"+addr)
	return &server{cmd: cmd, url: "http://" + addr}
}

func (s *server) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if s.cmd.ProcessState != nil {
		return // exited already
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%v: %v", sig, err)
	}
}

// stop shuts the server down as Ctrl-C does and checks it exits cleanly.
func (s *server) stop(t *testing.T) {
	t.Helper()
	s.signal(t, syscall.SIGINT)
	if err := s.cmd.Wait(); err != nil {
		t.Fatalf("server exit: %v", err)
	}
}

// fileHashes describes files by size and content hash.
func fileHashes(t *testing.T, paths ...string) string {
	t.Helper()
	var b strings.Builder
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			fmt.Fprintf(&b, "%s: none\n", filepath.Base(p))
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s: %d bytes %x\n", filepath.Base(p), len(data), sha256.Sum256(data))
	}
	return b.String()
}

// tableHashes describes every table of the database's public schema by
// its row count and a hash of its rows.
func tableHashes(t *testing.T, dsn string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, tbl := range tables {
		var n int64
		var sum string
		q := fmt.Sprintf(`SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM %s t`, pgx.Identifier{tbl}.Sanitize())
		if err := conn.QueryRow(ctx, q).Scan(&n, &sum); err != nil {
			t.Fatalf("%s: %v", tbl, err)
		}
		fmt.Fprintf(&b, "%s: %d rows %s\n", tbl, n, sum)
	}
	return b.String()
}

// A second kiln demo -reset on a database in use deletes nothing: the
// lock comes before the reset.
func TestSecondDemoKeepsTheDatabase(t *testing.T) {
	db := filepath.Join(t.TempDir(), "demo.db")
	st, err := sqlite.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	release, err := st.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	before := fileHashes(t, db, db+"-wal", db+"-shm", db+".key")
	_, _, err = kilnCmd(t, "demo", "-db", db, "-reset", "-exit")
	if want := fmt.Sprintf("%s is in use by another kiln process (pid %d)", db, os.Getpid()); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("second demo: %v, want %q", err, want)
	}
	if after := fileHashes(t, db, db+"-wal", db+"-shm", db+".key"); after != before {
		t.Errorf("the refused demo changed the files:\n%s\nwant\n%s", after, before)
	}
}
