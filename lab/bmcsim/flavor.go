package bmcsim

import "strings"

// profile holds what differs between flavors in data; behaviour that
// differs is switched on flavor where it happens.
type profile struct {
	flavor         Flavor
	vendor         string // ServiceRoot.Vendor
	product        string // ServiceRoot.Product
	redfishVersion string
	// slash: every @odata.id ends in "/", as on iLO.
	slash bool

	managerID, systemID, chassisID string
	managerModel                   string
	manufacturer, systemModel      string
	serial                         string

	// base is the Base message registry prefix, "Base.1.4" on iLO 5.
	base string
	// oem is the vendor's registry prefix for its own messages.
	oem string

	simpleUpdate  bool     // advertises and takes UpdateService.SimpleUpdate
	protocols     []string // TransferProtocol@Redfish.AllowableValues
	httpPushURI   string   // "" when none
	multipartURI  string   // "" when none
	sessionPrefix string   // session ids: prefix and a counter or random hex
}

var profiles = map[Flavor]*profile{
	ILO: {
		flavor:         ILO,
		vendor:         "HPE",
		product:        "ProLiant DL360 Gen10",
		redfishVersion: "1.6.0",
		slash:          true,
		managerID:      "1",
		systemID:       "1",
		chassisID:      "1",
		managerModel:   "iLO 5",
		manufacturer:   "HPE",
		systemModel:    "ProLiant DL360 Gen10",
		serial:         "CZJ0000001",
		base:           "Base.1.4",
		oem:            "iLO.2.15",
		simpleUpdate:   true,
		protocols:      []string{"HTTP", "HTTPS"},
		httpPushURI:    "/cgi-bin/uploadFile",
	},
	IDRAC: {
		flavor:         IDRAC,
		vendor:         "Dell",
		product:        "Integrated Dell Remote Access Controller",
		redfishVersion: "1.17.0",
		managerID:      "iDRAC.Embedded.1",
		systemID:       "System.Embedded.1",
		chassisID:      "System.Embedded.1",
		managerModel:   "16G Monolithic",
		manufacturer:   "Dell Inc.",
		systemModel:    "PowerEdge R760",
		serial:         "CNFCP0000100AB",
		base:           "Base.1.12",
		oem:            "IDRAC.2.8",
		simpleUpdate:   true,
		protocols:      []string{"HTTP", "HTTPS"},
		multipartURI:   "/redfish/v1/UpdateService/MultipartUpload",
	},
	OpenBMC: {
		flavor:         OpenBMC,
		vendor:         "OpenBMC",
		product:        "OpenBMC",
		redfishVersion: "1.17.0",
		managerID:      "bmc",
		systemID:       "system",
		chassisID:      "chassis",
		managerModel:   "OpenBmc",
		manufacturer:   "OpenBMC",
		systemModel:    "Romulus",
		serial:         "0000000000000000",
		base:           "Base.1.18.1",
		oem:            "OpenBMC.0.2",
		httpPushURI:    "/redfish/v1/UpdateService",
		multipartURI:   "/redfish/v1/UpdateService/update",
	},
}

// managerFirmwareVersion formats the Manager's FirmwareVersion from its
// firmware entry's version.
func (p *profile) managerFirmwareVersion(v string) string {
	if p.flavor == ILO {
		return "iLO 5 v" + v
	}
	return v
}

// certName is the common name of the BMC's self-signed certificate.
func (p *profile) certName(st *state) string {
	switch p.flavor {
	case ILO:
		return "ILO" + p.serial
	case IDRAC:
		return "idrac-" + st.serviceTag
	}
	return "OpenBMC"
}

// id is the @odata.id form of path (a path without a trailing slash).
func (p *profile) id(path string) string {
	if p.slash && !strings.HasSuffix(path, "/") {
		return path + "/"
	}
	return path
}

// ref is a Redfish link to path.
func (p *profile) ref(path string) obj { return obj{"@odata.id": p.id(path)} }

// Paths every flavor serves.
const (
	rootPath     = "/redfish/v1"
	sessionsPath = "/redfish/v1/SessionService/Sessions"
	updatePath   = "/redfish/v1/UpdateService"
	fwInvPath    = "/redfish/v1/UpdateService/FirmwareInventory"
	simplePath   = "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate"
	tasksPath    = "/redfish/v1/TaskService/Tasks"
	jobsPath     = "/redfish/v1/JobService/Jobs" // iDRAC
)

func (p *profile) managerPath() string { return "/redfish/v1/Managers/" + p.managerID }
func (p *profile) systemPath() string  { return "/redfish/v1/Systems/" + p.systemID }
func (p *profile) chassisPath() string { return "/redfish/v1/Chassis/" + p.chassisID }

// dellJobsPath is where an iDRAC keeps its jobs across resets.
func (p *profile) dellJobsPath() string { return p.managerPath() + "/Jobs" }
