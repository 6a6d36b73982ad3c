package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln/store/sqlite"
)

// TestCrashLosesNoAcknowledgedEvent kills the real server with SIGKILL in
// the middle of sustained ingest, several times, restarting it each time,
// and checks that every event it acknowledged is in the database.
func TestCrashLosesNoAcknowledgedEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and kills the binary; skipped with -short")
	}
	bin := buildKiln(t)
	db := filepath.Join(t.TempDir(), "crash.db")
	kiln := func(args ...string) string {
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Fatalf("kiln %s: %v", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out))
	}
	kiln("sources", "create", "-db", db, "-name", "web")
	key := kiln("keys", "create", "-db", db, "-kind", "write", "-source", "web")

	var mu sync.Mutex
	acked := map[string]bool{}
	const cycles = 4
	for cycle := 0; cycle < cycles; cycle++ {
		addr := freeAddr(t)
		srv := exec.Command(bin, "serve", "-db", db, "-addr", addr, "-log-level", "error")
		srv.Stderr = os.Stderr
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		waitHealthy(t, "http://"+addr)
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ctx.Err() == nil; n++ {
					ids := make([]string, 100)
					msgs := make([]map[string]any, len(ids))
					for i := range ids {
						ids[i] = fmt.Sprintf("c%d-w%d-b%d-m%d", cycle, w, n, i)
						msgs[i] = map[string]any{"type": "track", "event": "Order Completed", "userId": fmt.Sprintf("u%d", (n*100+i)%500),
							"messageId": ids[i], "properties": map[string]any{"revenue": 12.5, "order_id": ids[i]}}
					}
					body, _ := json.Marshal(map[string]any{"batch": msgs})
					req, _ := http.NewRequest("POST", "http://"+addr+"/v1/batch", bytes.NewReader(body))
					req.SetBasicAuth(key, "")
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						return // the server is gone
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 {
						mu.Lock()
						for _, id := range ids {
							acked[id] = true
						}
						mu.Unlock()
					}
				}
			}()
		}
		time.Sleep(time.Duration(400+150*cycle) * time.Millisecond)
		if err := srv.Process.Kill(); err != nil { // SIGKILL: no shutdown code runs
			t.Fatal(err)
		}
		srv.Wait()
		stop()
		wg.Wait()
	}

	st, err := sqlite.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stored := map[string]int{}
	for after := int64(0); ; {
		evs, err := st.ReadEvents(context.Background(), after, 10000)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			stored[e.MessageID]++
		}
		after = evs[len(evs)-1].Seq
	}
	lost := 0
	for id := range acked {
		if stored[id] == 0 {
			lost++
			if lost < 5 {
				t.Errorf("acknowledged event %s is missing after the crash", id)
			}
		}
	}
	for id, n := range stored {
		if n > 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	if len(acked) == 0 {
		t.Fatal("no batch was acknowledged: the test measured nothing")
	}
	t.Logf("%d cycles: %d events acknowledged, %d stored, %d lost", cycles, len(acked), len(stored), lost)
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitHealthy(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("server at %s did not become healthy", url)
}
