module github.com/fleetup/fleetup

go 1.24.0

require (
	github.com/BurntSushi/toml v1.5.0
	github.com/cavaliergopher/rpm v1.3.0
	github.com/google/go-cmp v0.7.0
	github.com/klauspost/compress v1.18.0
	github.com/pkg/sftp v1.13.10
	github.com/stmcginnis/gofish v0.21.0
	github.com/ulikunitz/xz v0.5.15
	go.uber.org/goleak v1.3.0
	golang.org/x/crypto v0.45.0
	golang.org/x/sys v0.38.0
	golang.org/x/term v0.37.0
)

require github.com/kr/fs v0.1.0 // indirect
