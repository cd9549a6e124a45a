package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/depot"
	"github.com/fleetup/fleetup/pki"
)

// server is one contender of the serving benchmark, listening on loopback.
type server struct {
	name       string
	httpURL    string
	httpsURL   string
	stop       func() error
	tokenOfClt func(i int) string // bearer token of client i on the http port
}

// runServe is section 4: many clients downloading one large component at
// once from fleetup's depot and from nginx, over http and over https with a
// client certificate of the run's CA.
func (b *bench) runServe(ctx context.Context) (err error) {
	work, err := os.MkdirTemp("", "fleetup-bench-serve-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := os.Chmod(work, 0o755); err != nil {
		return err
	}
	size := int64(b.cfg.ServeMiB) << 20
	payload := filepath.Join(work, "payload.bin")
	b.logf("writing a %d MiB component", b.cfg.ServeMiB)
	sum, err := writeRandom(payload, size)
	if err != nil {
		return err
	}
	ca, err := pki.NewCA("bench-serve")
	if err != nil {
		return err
	}
	srv, err := ca.Issue(pki.ManagerName, []string{"127.0.0.1"})
	if err != nil {
		return err
	}
	clt, err := ca.Issue("bench-client", nil)
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{"ca.pem": ca.CertPEM(), "server.pem": srv.CertPEM, "server.key": srv.KeyPEM} {
		if err := os.WriteFile(filepath.Join(work, name), data, 0o600); err != nil {
			return err
		}
	}
	clientTLS := pki.ClientTLS(ca.Pool(), clt.Cert, pki.ManagerName)

	dp, err := startDepotChild(ctx, work, payload, sum, size, b.cfg.ServeClients)
	if err != nil {
		return fmt.Errorf("depot: %w", err)
	}
	defer func() { err = errors.Join(err, dp.stop()) }()
	ngx, err := startNginx(ctx, work, sum)
	if err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	defer func() { err = errors.Join(err, ngx.stop()) }()

	type key struct{ who, proto string }
	got := map[key]sample{}
	for round := range b.cfg.Rounds {
		for _, proto := range []string{"http", "https"} {
			order := []*server{dp, ngx}
			if round%2 == 1 {
				order = []*server{ngx, dp}
			}
			for _, s := range order {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				url, cfg := s.httpURL, (*tls.Config)(nil)
				if proto == "https" {
					url, cfg = s.httpsURL, clientTLS
				}
				bps, err := download(ctx, url+"/v1/blobs/"+sum, cfg, s.tokenOfClt, b.cfg.ServeClients, size)
				if err != nil {
					b.problem("round %d, %s %s: %v", round+1, s.name, proto, err)
					continue
				}
				got[key{s.name, proto}] = append(got[key{s.name, proto}], bps)
				b.logf("round %d %-6s %-5s %d × %d MiB: %s", round+1, s.name, proto, b.cfg.ServeClients, b.cfg.ServeMiB, gbps(bps))
			}
		}
	}
	for _, proto := range []string{"http", "https"} {
		ours, peer := got[key{"depot", proto}], got[key{"nginx", proto}]
		ratio := ours.ratios(peer)
		how := "bearer token"
		if proto == "https" {
			how = "TLS 1.3, client certificate"
		}
		b.add(row{Section: "4", Measure: fmt.Sprintf("Serving over %s (%s): %d clients at once downloading %d MiB each (aggregate throughput)", proto, how, b.cfg.ServeClients, b.cfg.ServeMiB),
			Fleetup: ours.format(gbps), Peer: "nginx: " + peer.format(gbps), Ratio: ratio.format(times), Goal: "≥ 0.90×", Met: goal(ratio.median(), 0.9, true)})
	}
	b.note("Serving: the depot runs in its own process (this program re-executed, package depot as fleetup uses it), nginx %s with 2 workers, sendfile on, TLS 1.3 verifying the same client certificate; clients are Go HTTP/1.1 clients in the bench process, one connection each.", nginxVersion())
	return nil
}

// writeRandom writes size random bytes to path and returns their SHA-256.
func writeRandom(path string, size int64) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := int64(len(buf))
		if left < n {
			n = left
		}
		rand.Read(buf[:n])
		h.Write(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			return "", err
		}
		left -= n
	}
	if err := f.Chmod(0o644); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), f.Close()
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// download has clients fetch url at once, each on its own connection, and
// returns the aggregate throughput in bytes per second.
func download(ctx context.Context, url string, cfg *tls.Config, token func(int) string, clients int, size int64) (float64, error) {
	tr := &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: clients, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	errs := make([]error, clients)
	var wg sync.WaitGroup
	ready := make(chan struct{})
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ready
			errs[i] = func() error {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				if err != nil {
					return err
				}
				if token != nil {
					req.Header.Set("Authorization", "Bearer "+token(i))
				}
				resp, err := hc.Do(req)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("client %d: %s", i, resp.Status)
				}
				n, err := io.CopyBuffer(discard{}, resp.Body, make([]byte, 256<<10))
				if err != nil {
					return fmt.Errorf("client %d: %w", i, err)
				}
				if n != size {
					return fmt.Errorf("client %d: got %d bytes, want %d", i, n, size)
				}
				return nil
			}()
		}()
	}
	t0 := time.Now()
	close(ready)
	wg.Wait()
	d := time.Since(t0)
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return float64(size) * float64(clients) / d.Seconds(), nil
}

// startDepotChild runs the depot in a child process (this program with
// -child depot) so that it does not share a Go runtime with the clients,
// as nginx does not either.
func startDepotChild(ctx context.Context, work, payload, sum string, size int64, clients int) (*server, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	tokenBytes := make([]byte, 16)
	rand.Read(tokenBytes)
	token := hex.EncodeToString(tokenBytes)
	cmd := exec.Command(self, "-child", "depot", "-dir", work, "-file", payload, "-sha256", sum,
		"-size", strconv.FormatInt(size, 10), "-clients", strconv.Itoa(clients))
	cmd.Env = append(os.Environ(), "BENCH_DEPOT_TOKEN="+token)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() error {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			return fmt.Errorf("depot child %d did not stop; killed", cmd.Process.Pid)
		}
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	var hp, sp int
	if err == nil {
		_, err = fmt.Sscanf(line, "ready %d %d", &hp, &sp)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("depot child did not start: %w (%q)", err, line), stop())
	}
	_ = ctx
	return &server{
		name:       "depot",
		httpURL:    "http://127.0.0.1:" + strconv.Itoa(hp),
		httpsURL:   "https://127.0.0.1:" + strconv.Itoa(sp),
		stop:       stop,
		tokenOfClt: func(i int) string { return token + "-" + strconv.Itoa(i) },
	}, nil
}

// childDepot serves the payload with package depot until stdin closes. It
// prints "ready HTTPPORT HTTPSPORT" once listening.
func childDepot(args []string) error {
	fs := flag.NewFlagSet("depot", flag.ContinueOnError)
	dir := fs.String("dir", "", "")
	file := fs.String("file", "", "")
	sum := fs.String("sha256", "", "")
	size := fs.Int64("size", 0, "")
	clients := fs.Int("clients", 0, "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join(*dir, name))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		return data
	}
	leaf, err := pki.ParseLeaf(read("server.pem"), read("server.key"))
	if err != nil {
		return err
	}
	pool, err := pki.PoolFromPEM(read("ca.pem"))
	if err != nil {
		return err
	}
	d, err := depot.New(depot.Options{HTTPPortExplicit: true, HTTPSPortExplicit: true, TLS: pki.ServerTLS(pool, leaf)})
	if err != nil {
		return err
	}
	if err := d.Add(&fleetup.Component{ID: "bench.payload", Path: *file, Size: *size, SHA256: *sum}); err != nil {
		return err
	}
	token := os.Getenv("BENCH_DEPOT_TOKEN")
	for i := range *clients {
		d.AllowToken("client-"+strconv.Itoa(i), token+"-"+strconv.Itoa(i))
	}
	if err := d.Start(context.Background()); err != nil {
		return err
	}
	fmt.Printf("ready %d %d\n", d.HTTPPort(), d.HTTPSPort())
	_, _ = io.Copy(io.Discard, os.Stdin)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return d.Close(ctx)
}

const nginxConf = `daemon off;
master_process on;
user root;
worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65;
  default_type application/octet-stream;
  client_body_temp_path %[1]s/ngx-body;
  proxy_temp_path %[1]s/ngx-proxy;
  fastcgi_temp_path %[1]s/ngx-fastcgi;
  uwsgi_temp_path %[1]s/ngx-uwsgi;
  scgi_temp_path %[1]s/ngx-scgi;
  server {
    listen 127.0.0.1:%[2]d;
    root %[1]s/www;
  }
  server {
    listen 127.0.0.1:%[3]d ssl;
    root %[1]s/www;
    ssl_certificate %[1]s/server.pem;
    ssl_certificate_key %[1]s/server.key;
    ssl_protocols TLSv1.3;
    ssl_client_certificate %[1]s/ca.pem;
    ssl_verify_client on;
  }
}
`

// startNginx serves work/payload.bin as /v1/blobs/SUM on two free loopback
// ports; stop ends it by its PID.
func startNginx(ctx context.Context, work, sum string) (*server, error) {
	ports := make([]int, 2)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	blobs := filepath.Join(work, "www", "v1", "blobs")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return nil, err
	}
	if err := os.Link(filepath.Join(work, "payload.bin"), filepath.Join(blobs, sum)); err != nil {
		return nil, err
	}
	conf := filepath.Join(work, "nginx.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, work, ports[0], ports[1])), 0o644); err != nil {
		return nil, err
	}
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			return nil, fmt.Errorf("nginx not found (apt-get install nginx): %w", err)
		}
		bin = "/usr/sbin/nginx"
	}
	cmd := exec.Command(bin, "-c", conf, "-p", work, "-e", filepath.Join(work, "nginx-error.log"))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stop := func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM) // the master stops its workers
		select {
		case <-done:
			return nil
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("nginx %d did not stop on SIGTERM; killed", cmd.Process.Pid)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		c1, err1 := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(ports[0]))
		c2, err2 := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(ports[1]))
		if c1 != nil {
			c1.Close()
		}
		if c2 != nil {
			c2.Close()
		}
		if err1 == nil && err2 == nil {
			break
		}
		select {
		case err := <-done:
			done <- err
			log, _ := os.ReadFile(filepath.Join(work, "nginx-error.log"))
			return nil, fmt.Errorf("nginx exited: %v: %s %s", err, out.String(), log)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, errors.Join(errors.New("nginx did not listen within 10s"), stop())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &server{
		name:     "nginx",
		httpURL:  "http://127.0.0.1:" + strconv.Itoa(ports[0]),
		httpsURL: "https://127.0.0.1:" + strconv.Itoa(ports[1]),
		stop:     stop,
	}, nil
}

func nginxVersion() string {
	out, err := exec.Command("nginx", "-v").CombinedOutput()
	if err != nil {
		return ""
	}
	_, v, _ := strings.Cut(strings.TrimSpace(string(out)), "nginx/")
	return v
}
