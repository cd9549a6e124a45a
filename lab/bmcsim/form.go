package bmcsim

import (
	"errors"
	"fmt"
	"io"
	"mime/multipart"
)

// maxFormFields bounds how many small parts a form may have.
const maxFormFields = 16

// formSpec says how to read a multipart update form.
type formSpec struct {
	// file names the part holding the image, which is streamed.
	file string
	// beforeFile, if set, runs when the file part starts, with the parts
	// read so far; an error stops reading and is returned.
	beforeFile func(*form) error
	// progress, if set, sees the image bytes read so far.
	progress func(int64)
}

// form is what a multipart update form held: its small parts and what the
// image part's header said. The image itself is not kept.
type form struct {
	fields  map[string]string // parts other than the file, by name
	hasFile bool
	hdr     imageHeader
	hdrErr  error // why the image has no usable header
	n       int64 // image bytes read
}

func (f *form) hasField(name string) bool {
	_, ok := f.fields[name]
	return ok
}

// readForm reads a multipart/form-data body with the given boundary. Parts
// other than the file are kept if small (up to maxJSONBody each); the file
// part is streamed through readImage; a second file part is an error. The
// error says why the body could not be read to its end: malformed, too
// big, or cut off. The form read so far is returned with it.
func readForm(body io.Reader, boundary string, spec formSpec) (*form, error) {
	f := &form{fields: map[string]string{}}
	mr := multipart.NewReader(body, boundary)
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return f, nil
		}
		if err != nil {
			return f, fmt.Errorf("multipart body: %w", err)
		}
		name := part.FormName()
		if name == spec.file {
			if f.hasFile {
				return f, fmt.Errorf("multipart body: two %q parts", name)
			}
			f.hasFile = true
			if spec.beforeFile != nil {
				if err := spec.beforeFile(f); err != nil {
					return f, err
				}
			}
			var terr error
			f.hdr, f.hdrErr, f.n, terr = readImage(part, spec.progress)
			if terr != nil {
				return f, fmt.Errorf("part %q after %d bytes: %w", name, f.n, terr)
			}
			continue
		}
		data, err := readAllLimited(part, maxJSONBody)
		if err != nil {
			return f, fmt.Errorf("part %q: %w", name, err)
		}
		if len(f.fields) >= maxFormFields {
			return f, errors.New("multipart body: too many parts")
		}
		f.fields[name] = string(data)
	}
}

// readAllLimited reads r to its end, failing beyond limit bytes.
func readAllLimited(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return data, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("more than %d bytes", limit)
	}
	return data, nil
}
