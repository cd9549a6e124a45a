package redfish

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"github.com/stmcginnis/gofish/schemas"

	"github.com/fleetup/fleetup"
)

// maxPages bounds the pages of one collection (Members@odata.nextLink).
const maxPages = 32

// Capabilities are the update methods a BMC's UpdateService advertises.
type Capabilities struct {
	// SimpleUpdate is the #UpdateService.SimpleUpdate action: the BMC
	// pulls the image from an ImageURI.
	SimpleUpdate bool
	// TransferProtocols are the allowable values of SimpleUpdate's
	// TransferProtocol (upper case; from the action, else its
	// ActionInfo), empty when the BMC does not say.
	TransferProtocols []string
	// MultipartHTTPPushURI and HTTPPushURI are paths on the endpoint,
	// empty when not advertised.
	MultipartHTTPPushURI string
	HTTPPushURI          string
	// HPE is an UpdateService with Oem.Hpe: an iLO, whose updates report
	// progress in that state machine rather than in a task.
	HPE bool
}

// Inventory reads what the BMC says about itself: the service root's
// Vendor and RedfishVersion, the first Manager, every member of the
// UpdateService's FirmwareInventory in the collection's order, and the
// first System (nil when there is none).
func (c *Client) Inventory(ctx context.Context) (*fleetup.BMCInventory, error) {
	rt, err := c.currentRoot(ctx)
	if err != nil {
		return nil, err
	}
	inv := &fleetup.BMCInventory{Vendor: rt.vendor, RedfishVersion: rt.version}

	if rt.managers == "" {
		return nil, fmt.Errorf("redfish at %s: the service root links no Managers", c.endpoint)
	}
	mgrs, err := c.members(ctx, rt.managers, 1)
	if err != nil {
		return nil, err
	}
	if len(mgrs) == 0 {
		return nil, fmt.Errorf("redfish at %s: no Manager in %s", c.endpoint, rt.managers)
	}
	m, err := getObject[schemas.Manager](ctx, c, mgrs[0])
	if err != nil {
		return nil, err
	}
	inv.Manager = fleetup.BMCManager{ID: clean(m.ID), Model: clean(m.Model), FirmwareVersion: clean(m.FirmwareVersion)}
	c.mu.Lock()
	c.manager = jobID(mgrs[0])
	c.mu.Unlock()

	if rt.updateService != "" {
		us, err := c.updateService(ctx, rt.updateService)
		if err != nil {
			return nil, err
		}
		if us.firmwareInventory != "" {
			refs, err := c.members(ctx, us.firmwareInventory, maxMembers)
			if err != nil {
				return nil, err
			}
			fws, err := getObjects[schemas.SoftwareInventory](ctx, c, refs)
			if err != nil {
				return nil, err
			}
			for _, fw := range fws {
				inv.Firmware = append(inv.Firmware, fleetup.Firmware{
					ID:         clean(fw.ID),
					Name:       clean(fw.Name),
					Version:    clean(fw.Version),
					SoftwareID: clean(fw.SoftwareID),
					Updateable: fw.Updateable,
				})
			}
		}
	}

	if rt.systems != "" {
		sys, err := c.members(ctx, rt.systems, 1)
		if err != nil {
			return nil, err
		}
		if len(sys) > 0 {
			s, err := getObject[schemas.ComputerSystem](ctx, c, sys[0])
			if err != nil {
				return nil, err
			}
			inv.System = &fleetup.BMCSystem{
				Manufacturer: clean(s.Manufacturer),
				Model:        clean(s.Model),
				SerialNumber: clean(s.SerialNumber),
				PowerState:   clean(string(s.PowerState)),
				BIOSVersion:  clean(s.BiosVersion),
			}
		}
	}
	return inv, nil
}

// Capabilities reads the update methods the BMC advertises.
func (c *Client) Capabilities(ctx context.Context) (*Capabilities, error) {
	rt, err := c.currentRoot(ctx)
	if err != nil {
		return nil, err
	}
	if rt.updateService == "" {
		return &Capabilities{}, nil
	}
	us, err := c.updateService(ctx, rt.updateService)
	if err != nil {
		return nil, err
	}
	caps := us.caps
	if caps.SimpleUpdate && len(caps.TransferProtocols) == 0 && us.actionInfo != "" {
		if r, err := c.getOK(ctx, us.actionInfo); err == nil {
			caps.TransferProtocols = actionInfoProtocols(r.body)
		} else if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return &caps, nil
}

// currentRoot reads the service root again, with the session.
func (c *Client) currentRoot(ctx context.Context) (root, error) {
	r, err := c.getOK(ctx, serviceRoot)
	if err != nil {
		return root{}, err
	}
	rt, err := parseRoot(r.body, c.resolver(serviceRoot))
	if err != nil {
		return root{}, fmt.Errorf("redfish at %s: GET %s: %w", c.endpoint, serviceRoot, err)
	}
	c.mu.Lock()
	c.root = rt
	c.mu.Unlock()
	return rt, nil
}

// updateService reads the UpdateService at uri.
func (c *Client) updateService(ctx context.Context, uri string) (updateService, error) {
	r, err := c.getOK(ctx, uri)
	if err != nil {
		return updateService{}, err
	}
	us, err := parseUpdateService(r.body, c.resolver(uri))
	if err != nil {
		return updateService{}, fmt.Errorf("redfish at %s: GET %s: %w", c.endpoint, uri, err)
	}
	return us, nil
}

// members lists the members of the collection at uri, in the BMC's order,
// following Members@odata.nextLink; at most limit of them. gofish's
// collection readers fetch members concurrently and return them in the
// order they arrive, hence this.
func (c *Client) members(ctx context.Context, uri string, limit int) ([]string, error) {
	var out []string
	for page := 0; uri != "" && len(out) < limit; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("redfish at %s: collection with more than %d pages", c.endpoint, maxPages)
		}
		r, err := c.getOK(ctx, uri)
		if err != nil {
			return nil, err
		}
		col, err := parseCollection(r.body, c.resolver(uri))
		if err != nil {
			return nil, fmt.Errorf("redfish at %s: GET %s: %w", c.endpoint, uri, err)
		}
		out = append(out, col.members...)
		uri = col.next
	}
	return out[:min(len(out), limit)], nil
}

// getObject reads one typed resource through gofish.
func getObject[T any, PT schemas.GenericSchemaObjectPointer[T]](ctx context.Context, c *Client, uri string) (*T, error) {
	api, err := c.apiFor(ctx)
	if err != nil {
		return nil, err
	}
	v, err := schemas.GetObject[T, PT](api, uri)
	if err != nil {
		return nil, c.gofishError(ctx, http.MethodGet, uri, err)
	}
	return v, nil
}

// getObjects reads typed resources, three at a time, keeping their order.
func getObjects[T any, PT schemas.GenericSchemaObjectPointer[T]](ctx context.Context, c *Client, uris []string) ([]*T, error) {
	out := make([]*T, len(uris))
	errs := make([]error, len(uris))
	sem := make(chan struct{}, 3)
	var wg sync.WaitGroup
	for i, uri := range uris {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i], errs[i] = getObject[T, PT](ctx, c, uri)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	for _, err := range errs {
		if err != nil {
			return nil, err // the first: a BMC that went down fails them all alike
		}
	}
	return out, nil
}
