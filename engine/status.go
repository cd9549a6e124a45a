package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"sync"
	"time"

	"github.com/fleetup/fleetup"
)

// StatusPoster posts the engine's events to the manager's web server
// (POST /v1/status), as HP SUM's nodes post their status (SPEC S4). Posting
// is best effort and never holds up an install: events queue (up to a
// bound, the oldest dropped first) and go in batches. The manager does not
// depend on them: the install stream carries the same events.
type StatusPoster struct {
	url    string
	client *http.Client
	logger *log.Logger

	mu      sync.Mutex
	queue   []fleetup.Event
	wake    chan struct{}
	done    chan struct{}
	stopped bool
	failed  int
}

// NewStatusPoster posts to baseURL+"/v1/status" with client.
func NewStatusPoster(baseURL string, client *http.Client, logger *log.Logger) *StatusPoster {
	p := &StatusPoster{url: baseURL + "/v1/status", client: client, logger: logger, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go p.loop()
	return p
}

// Post queues ev.
func (p *StatusPoster) Post(ev fleetup.Event) {
	p.mu.Lock()
	if !p.stopped {
		if len(p.queue) >= 1000 {
			p.queue = p.queue[1:]
		}
		p.queue = append(p.queue, ev)
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Close sends what is queued (bounded by ctx) and stops.
func (p *StatusPoster) Close(ctx context.Context) {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	select {
	case <-p.done:
	case <-ctx.Done():
	}
}

func (p *StatusPoster) loop() {
	defer close(p.done)
	for range p.wake {
		p.mu.Lock()
		batch := p.queue
		p.queue = nil
		stopped := p.stopped
		p.mu.Unlock()
		if len(batch) > 0 {
			if err := p.send(batch); err != nil {
				p.failed++
				if p.failed <= 3 && p.logger != nil {
					p.logger.Printf("status post to the manager failed (the install stream still carries it): %v", err)
				}
			}
		}
		if stopped {
			return
		}
	}
}

func (p *StatusPoster) send(batch []fleetup.Event) error {
	b, err := json.Marshal(batch)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("manager answered %s", resp.Status)
	}
	return nil
}
