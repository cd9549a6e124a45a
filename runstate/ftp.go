package runstate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// FTPCredentials is the login a run's FTP server (--ftp-port) accepts
// from switches, and which manager serves it.
type FTPCredentials struct {
	RunID    string
	User     string
	Password string
	Port     int
	// Owner is the manager serving them; WriteFTPCredentials sets Self()
	// when zero.
	Owner Owner

	// File and Liveness are set by ReadFTPCredentials.
	File     string
	Liveness Liveness
}

// ftpPrefix and ftpSuffix make a credentials file's name around its run
// id.
const (
	ftpPrefix = "ftp-"
	ftpSuffix = ".credentials"
)

// FTPCredentialsPath returns the credentials file of run runID in dir.
func FTPCredentialsPath(dir, runID string) string {
	return filepath.Join(dir, ftpPrefix+runID+ftpSuffix)
}

// WriteFTPCredentials writes c to its file in dir (the state directory),
// creating dir, and returns the file's name. The file is mode 0600 and
// written whole or not at all (atomic and synced); one that exists
// already is an error and stays as it is, so nothing else's file is
// overwritten. Its content is "key=value" lines for people (the switches'
// administrator) to read, after a comment line.
func WriteFTPCredentials(dir string, c FTPCredentials) (string, error) {
	if err := ValidRunID(c.RunID); err != nil {
		return "", fmt.Errorf("ftp credentials: %w", err)
	}
	for k, v := range map[string]string{"user": c.User, "password": c.Password} {
		if v == "" || strings.ContainsAny(v, "\r\n") {
			return "", fmt.Errorf("ftp credentials of run %s: %s empty or with a line break", c.RunID, k)
		}
	}
	if err := mkdir(dir); err != nil {
		return "", fmt.Errorf("ftp credentials: state directory %s: %w", dir, err)
	}
	if c.Owner == (Owner{}) {
		c.Owner = Self()
	}
	body := fmt.Sprintf("# FTP login for switches in fleetup run %s; removed when the run ends\nrun=%s\nuser=%s\npassword=%s\nport=%d\npid=%d\nproc_start=%d\n",
		c.RunID, c.RunID, c.User, c.Password, c.Port, c.Owner.PID, c.Owner.Start)
	path := FTPCredentialsPath(dir, c.RunID)
	if err := writeNew(path, []byte(body)); err != nil {
		return "", fmt.Errorf("ftp credentials: %w", err)
	}
	return path, nil
}

// RemoveFTPCredentials removes a credentials file (the run's end). A file
// already gone is no error.
func RemoveFTPCredentials(path string) error {
	if err := removeFile(path); err != nil {
		return fmt.Errorf("ftp credentials: %w", err)
	}
	return nil
}

// ParseFTPCredentials parses the content of the credentials file of run
// runID (from its name). Files written before the start time was
// recorded (no proc_start line) parse, with an unknown start.
func ParseFTPCredentials(runID string, data []byte) (*FTPCredentials, error) {
	c := &FTPCredentials{RunID: runID}
	seen := map[string]bool{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: not key=value", i+1)
		}
		if seen[k] {
			return nil, fmt.Errorf("line %d: %s given twice", i+1, k)
		}
		seen[k] = true
		var err error
		switch k {
		case "run":
			if v != runID {
				err = fmt.Errorf("holds run %q, not %q", v, runID)
			}
		case "user":
			c.User = v
		case "password":
			c.Password = v
		case "port":
			c.Port, err = strconv.Atoi(v)
		case "pid":
			c.Owner.PID, err = strconv.Atoi(v)
		case "proc_start":
			c.Owner.Start, err = strconv.ParseUint(v, 10, 64)
		default:
			err = fmt.Errorf("unknown key %q", k)
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
	}
	switch {
	case c.User == "" || c.Password == "":
		return nil, errors.New("no user or no password")
	case c.Owner.PID <= 0:
		return nil, fmt.Errorf("manager pid %d", c.Owner.PID)
	case c.Port < 0 || c.Port > 65535:
		return nil, fmt.Errorf("port %d out of range", c.Port)
	}
	return c, nil
}

// ReadFTPCredentials reads every credentials file in dir (none when dir
// does not exist), each with its File and Liveness. A file that cannot be
// read or parsed is named in the error; the others are returned.
// Temporary files of writers that crashed more than an hour ago are
// removed.
func ReadFTPCredentials(dir string) ([]*FTPCredentials, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ftp credentials: %w", err)
	}
	cleanTemps(dir)
	var (
		out  []*FTPCredentials
		errs []error
	)
	for _, e := range entries {
		name := e.Name()
		runID, ok := strings.CutPrefix(name, ftpPrefix)
		if !ok {
			continue
		}
		if runID, ok = strings.CutSuffix(runID, ftpSuffix); !ok {
			continue
		}
		path := filepath.Join(dir, name)
		if err := ValidRunID(runID); err != nil {
			errs = append(errs, fmt.Errorf("ftp credentials file %s: %w", path, err))
			continue
		}
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the listing
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("ftp credentials file %s: %w", path, err))
			continue
		}
		c, err := ParseFTPCredentials(runID, data)
		if err != nil {
			errs = append(errs, fmt.Errorf("ftp credentials file %s: %w", path, err))
			continue
		}
		c.File = path
		c.Liveness = c.Owner.Check()
		out = append(out, c)
	}
	return out, errors.Join(errs...)
}

// RemoveStaleFTPCredentials removes the credentials files in dir whose
// manager is no longer alive (Owner.Check: killed before it could remove
// them), and returns a line for each, naming the file and why its owner
// is taken for dead. Files that cannot be parsed are named in the error
// and left in place.
func RemoveStaleFTPCredentials(dir string) ([]string, error) {
	creds, err := ReadFTPCredentials(dir)
	errs := []error{err}
	var removed []string
	for _, c := range creds {
		if c.Liveness.Alive {
			continue
		}
		if err := RemoveFTPCredentials(c.File); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, fmt.Sprintf("ftp credentials %s (run %s: %s)", c.File, c.RunID, c.Liveness.Reason))
	}
	return removed, errors.Join(errs...)
}
