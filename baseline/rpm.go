package baseline

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/cavaliergopher/rpm"

	"github.com/fleetup/fleetup"
)

func loadRPM(path string) ([]*fleetup.Component, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	if _, err := br.Peek(1); err == io.EOF {
		return nil, errors.New("empty file")
	}
	p, err := rpm.Read(br)
	if err != nil {
		return nil, fmt.Errorf("rpm: %w", err)
	}
	if p.Name() == "" || p.Version() == "" {
		return nil, errors.New("rpm: header has no name or version")
	}
	v := p.Version()
	if p.Release() != "" {
		v += "-" + p.Release()
	}
	if e := p.Epoch(); e > 0 {
		v = strconv.Itoa(e) + ":" + v
	}
	c := &fleetup.Component{
		ID:            p.Name(),
		Name:          p.Summary(),
		Version:       v,
		Kind:          fleetup.KindRPM,
		VersionFormat: "rpm",
		Package:       p.Name(),
		Arch:          p.Architecture(),
		Targets:       []string{p.Name()},
	}
	if c.Name == "" {
		c.Name = c.Package
	}
	if err := checkID(c.ID); err != nil {
		return nil, fmt.Errorf("rpm: %w", err)
	}
	if err := payload(c, path); err != nil {
		return nil, err
	}
	return []*fleetup.Component{c}, nil
}
