package bmcsim

import (
	"net/http"
	"slices"
	"strings"
	"time"
)

// The renderers below build the BMC's resources. Each runs with b.mu held.

func (b *BMC) serviceRoot() obj {
	p := b.prof
	o := obj{
		"@odata.context": "/redfish/v1/$metadata#ServiceRoot.ServiceRoot",
		"@odata.id":      p.id(rootPath),
		"@odata.type":    "#ServiceRoot.v1_11_0.ServiceRoot",
		"Id":             "RootService",
		"Name":           "Root Service",
		"RedfishVersion": p.redfishVersion,
		"UUID":           b.st.uuid,
		"Vendor":         p.vendor,
		"Product":        p.product,
		"Links":          obj{"Sessions": p.ref(sessionsPath), "ManagerProvidingService": p.ref(p.managerPath())},
		"AccountService": p.ref("/redfish/v1/AccountService"),
		"SessionService": p.ref("/redfish/v1/SessionService"),
		"Managers":       p.ref("/redfish/v1/Managers"),
		"Systems":        p.ref("/redfish/v1/Systems"),
		"Chassis":        p.ref("/redfish/v1/Chassis"),
		"UpdateService":  p.ref(updatePath),
		"Tasks":          p.ref("/redfish/v1/TaskService"),
		"JsonSchemas":    p.ref("/redfish/v1/JsonSchemas"),
		"Registries":     p.ref("/redfish/v1/Registries"),
		"ProtocolFeaturesSupported": obj{
			"ExpandQuery":     obj{"ExpandAll": false, "Levels": false, "Links": false, "NoLinks": false},
			"FilterQuery":     false,
			"SelectQuery":     false,
			"OnlyMemberQuery": false,
			"ExcerptQuery":    false,
		},
	}
	mgr := b.st.firmware[b.st.manager()]
	switch p.flavor {
	case ILO:
		o["ProtocolFeaturesSupported"].(obj)["ExpandQuery"] = obj{"ExpandAll": false, "Levels": false, "Links": false, "NoLinks": true}
		o["@odata.type"] = "#ServiceRoot.v1_5_1.ServiceRoot"
		o["Name"] = "HPE RESTful Root Service"
		// ilorest reads the iLO generation and version from here.
		o["Oem"] = obj{"Hpe": obj{
			"@odata.type": "#HpeiLOServiceExt.v2_3_0.HpeiLOServiceExt",
			"Links":       obj{"ResourceDirectory": p.ref("/redfish/v1/ResourceDirectory")},
			"Manager": []obj{{
				"DefaultLanguage":        "en",
				"FQDN":                   "ilo" + strings.ToLower(p.serial) + ".lab",
				"HostName":               "ILO" + p.serial,
				"Languages":              []obj{{"Language": "en", "TranslationName": "English", "Version": mgr.Version}},
				"ManagerFirmwareVersion": mgr.Version,
				"ManagerType":            p.managerModel,
				"Status":                 obj{"Health": "OK"},
			}},
			"Moniker": obj{"PRODABR": "iLO", "PRODFAM": "Integrated Lights-Out", "PRODGEN": p.managerModel,
				"PRODNAM": "Integrated Lights-Out 5", "PRODTAG": "HPE iLO 5", "VENDABR": "HPE",
				"VENDNAM": "Hewlett Packard Enterprise"},
			"Sessions": obj{"CertCommonName": p.certName(&b.st), "CertificateLoginEnabled": false,
				"KerberosEnabled": false, "LDAPAuthLicenced": true, "LDAPEnabled": false,
				"LocalLoginEnabled": true, "LoginFailureDelay": 0, "LoginHint": obj{"Hint": "POST to /Sessions to login using the following JSON object:", "HintPOSTData": obj{"Password": "password", "UserName": "username"}},
				"SecurityOverride": false, "ServerName": ""},
			"System": []obj{{"Status": obj{"Health": "OK"}}},
			"Time":   redfishTime(b.now()),
		}}
	case IDRAC:
		o["@odata.type"] = "#ServiceRoot.v1_17_0.ServiceRoot"
		o["JobService"] = p.ref("/redfish/v1/JobService")
		o["Oem"] = obj{"Dell": obj{
			"@odata.type":       "#DellServiceRoot.v1_0_0.DellServiceRoot",
			"IsBranded":         0,
			"ManagerMACAddress": "c8:4b:d6:00:00:01",
			"ServiceTag":        b.st.serviceTag,
		}}
	case OpenBMC:
		o["@odata.type"] = "#ServiceRoot.v1_15_0.ServiceRoot"
	}
	return o
}

// odataService is the OData service document.
func (b *BMC) odataService() obj {
	var vals []obj
	for _, n := range []string{"AccountService", "Chassis", "JsonSchemas", "Managers", "Registries", "SessionService", "Systems", "Tasks", "UpdateService"} {
		url := "/redfish/v1/" + n
		if n == "Tasks" {
			url = "/redfish/v1/TaskService"
		}
		vals = append(vals, obj{"name": n, "kind": "Singleton", "url": b.prof.id(url)})
	}
	vals = append(vals, obj{"name": "Sessions", "kind": "Singleton", "url": b.prof.id(sessionsPath)})
	return obj{"@odata.context": "/redfish/v1/$metadata", "value": vals}
}

// metadata is a minimal CSDL document naming the schemas the service uses.
func (b *BMC) metadata(w http.ResponseWriter, r *http.Request) {
	var s strings.Builder
	s.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	s.WriteString(`<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">` + "\n")
	for _, n := range []string{"ServiceRoot", "AccountService", "ManagerAccount", "Role", "Chassis", "ComputerSystem", "Manager",
		"Session", "SessionService", "SoftwareInventory", "Task", "TaskService", "UpdateService", "Message"} {
		s.WriteString(`  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/` + n + `_v1.xml">` + "\n")
		s.WriteString(`    <edmx:Include Namespace="` + n + `"/>` + "\n")
		s.WriteString("  </edmx:Reference>\n")
	}
	s.WriteString(`  <edmx:DataServices>` + "\n")
	s.WriteString(`    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Service">` + "\n")
	s.WriteString(`      <EntityContainer Name="Service" Extends="ServiceRoot.v1_5_0.ServiceContainer"/>` + "\n")
	s.WriteString("    </Schema>\n  </edmx:DataServices>\n</edmx:Edmx>\n")
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("OData-Version", "4.0")
	_, _ = w.Write([]byte(s.String()))
}

// collection is a resource collection of the given members.
func (b *BMC) collection(path, odataType, name string, members []string) obj {
	ms := make([]obj, 0, len(members))
	for _, m := range members {
		ms = append(ms, b.prof.ref(m))
	}
	return obj{
		"@odata.id":           b.prof.id(path),
		"@odata.type":         odataType,
		"Name":                name,
		"Members":             ms,
		"Members@odata.count": len(ms),
	}
}

func (b *BMC) sessionService() obj {
	p := b.prof
	return obj{
		"@odata.id":      p.id("/redfish/v1/SessionService"),
		"@odata.type":    "#SessionService.v1_1_8.SessionService",
		"Id":             "SessionService",
		"Name":           "Session Service",
		"Description":    "Session Service",
		"ServiceEnabled": true,
		"SessionTimeout": int((b.opts.SessionTimeout + time.Second - 1) / time.Second), // whole seconds, rounded up
		"Sessions":       p.ref(sessionsPath),
		"Status":         obj{"Health": "OK", "State": "Enabled"},
	}
}

func (b *BMC) sessionCollection() obj {
	b.expireSessionsLocked()
	var ids []string
	for _, s := range b.st.sessions {
		ids = append(ids, s.id)
	}
	slices.Sort(ids)
	paths := make([]string, len(ids))
	for i, id := range ids {
		paths[i] = sessionsPath + "/" + id
	}
	return b.collection(sessionsPath, "#SessionCollection.SessionCollection", "Session Collection", paths)
}

func (b *BMC) sessionResource(id string) (obj, bool) {
	b.expireSessionsLocked()
	s := b.st.sessionByID(id)
	if s == nil {
		return nil, false
	}
	return b.sessionJSON(s), true
}

func (b *BMC) sessionJSON(s *session) obj {
	return obj{
		"@odata.id":   b.prof.id(sessionsPath + "/" + s.id),
		"@odata.type": "#Session.v1_3_0.Session",
		"Id":          s.id,
		"Name":        "User Session",
		"Description": "Manager User Session",
		"UserName":    s.user,
		"CreatedTime": redfishTime(s.created),
	}
}

// The one account has the flavor's usual id.
func (b *BMC) accountID() string {
	if b.prof.flavor == IDRAC {
		return "2" // slot 1 is reserved on an iDRAC
	}
	return "1"
}

func (b *BMC) accountService() obj {
	p := b.prof
	return obj{
		"@odata.id":                       p.id("/redfish/v1/AccountService"),
		"@odata.type":                     "#AccountService.v1_5_0.AccountService",
		"Id":                              "AccountService",
		"Name":                            "Account Service",
		"ServiceEnabled":                  true,
		"MinPasswordLength":               8,
		"MaxPasswordLength":               20,
		"AccountLockoutThreshold":         0,
		"AuthFailureLoggingThreshold":     3,
		"Accounts":                        p.ref("/redfish/v1/AccountService/Accounts"),
		"Roles":                           p.ref("/redfish/v1/AccountService/Roles"),
		"LocalAccountAuth":                "Enabled",
		"Status":                          obj{"Health": "OK", "State": "Enabled"},
		"AccountLockoutDuration":          0,
		"AccountLockoutCounterResetAfter": 0,
	}
}

func (b *BMC) accountCollection() obj {
	return b.collection("/redfish/v1/AccountService/Accounts", "#ManagerAccountCollection.ManagerAccountCollection", "Accounts Collection",
		[]string{"/redfish/v1/AccountService/Accounts/" + b.accountID()})
}

func (b *BMC) account(id string) (obj, bool) {
	if id != b.accountID() {
		return nil, false
	}
	p := b.prof
	return obj{
		"@odata.id":   p.id("/redfish/v1/AccountService/Accounts/" + id),
		"@odata.type": "#ManagerAccount.v1_4_0.ManagerAccount",
		"Id":          id,
		"Name":        "User Account",
		"UserName":    b.opts.User,
		"Password":    nil,
		"RoleId":      "Administrator",
		"Enabled":     true,
		"Locked":      false,
		"Links":       obj{"Role": p.ref("/redfish/v1/AccountService/Roles/Administrator")},
	}, true
}

func (b *BMC) roleCollection() obj {
	return b.collection("/redfish/v1/AccountService/Roles", "#RoleCollection.RoleCollection", "Roles Collection",
		[]string{"/redfish/v1/AccountService/Roles/Administrator"})
}

func (b *BMC) role(id string) (obj, bool) {
	if id != "Administrator" {
		return nil, false
	}
	return obj{
		"@odata.id":          b.prof.id("/redfish/v1/AccountService/Roles/Administrator"),
		"@odata.type":        "#Role.v1_2_1.Role",
		"Id":                 "Administrator",
		"Name":               "User Role",
		"RoleId":             "Administrator",
		"IsPredefined":       true,
		"AssignedPrivileges": []string{"Login", "ConfigureManager", "ConfigureUsers", "ConfigureSelf", "ConfigureComponents"},
	}, true
}

func (b *BMC) managerCollection() obj {
	return b.collection("/redfish/v1/Managers", "#ManagerCollection.ManagerCollection", "Manager Collection", []string{b.prof.managerPath()})
}

func (b *BMC) systemCollection() obj {
	return b.collection("/redfish/v1/Systems", "#ComputerSystemCollection.ComputerSystemCollection", "Computer System Collection", []string{b.prof.systemPath()})
}

func (b *BMC) chassisCollection() obj {
	return b.collection("/redfish/v1/Chassis", "#ChassisCollection.ChassisCollection", "Chassis Collection", []string{b.prof.chassisPath()})
}

func (b *BMC) manager() obj {
	p := b.prof
	mgr := b.st.firmware[b.st.manager()]
	fw := p.managerFirmwareVersion(mgr.Version)
	o := obj{
		"@odata.id":       p.id(p.managerPath()),
		"@odata.type":     "#Manager.v1_11_0.Manager",
		"Id":              p.managerID,
		"Name":            "Manager",
		"Description":     "BMC",
		"ManagerType":     "BMC",
		"Model":           p.managerModel,
		"FirmwareVersion": fw,
		"UUID":            b.st.uuid,
		"PowerState":      "On",
		"DateTime":        redfishTime(b.now()),
		"Status":          obj{"Health": "OK", "State": "Enabled"},
		"Links": obj{
			"ManagerForServers": []obj{p.ref(p.systemPath())},
			"ManagerForChassis": []obj{p.ref(p.chassisPath())},
		},
		"Actions": obj{"#Manager.Reset": obj{
			"target":                            p.id(p.managerPath() + "/Actions/Manager.Reset"),
			"ResetType@Redfish.AllowableValues": []string{"GracefulRestart", "ForceRestart"},
		}},
	}
	switch p.flavor {
	case ILO:
		o["Oem"] = obj{"Hpe": obj{
			"@odata.type": "#HpeiLO.v2_7_0.HpeiLO",
			"Firmware": obj{"Current": obj{
				"Date":          "Feb 09 2022",
				"DebugBuild":    false,
				"MajorVersion":  majorMinor(mgr.Version, 0),
				"MinorVersion":  majorMinor(mgr.Version, 1),
				"VersionString": fw,
			}},
		}}
	case IDRAC:
		o["Links"].(obj)["Oem"] = obj{"Dell": obj{"Jobs": p.ref(p.dellJobsPath())}}
	case OpenBMC:
		o["Name"] = "OpenBmc Manager"
		o["ServiceEntryPointUUID"] = b.st.uuid
	}
	return o
}

// majorMinor is the i-th dot-separated number of v, or 0.
func majorMinor(v string, i int) int {
	parts := strings.Split(v, ".")
	if i >= len(parts) {
		return 0
	}
	n := 0
	for _, c := range parts[i] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func (b *BMC) system() obj {
	p := b.prof
	bios := ""
	if i := b.st.bios(); i >= 0 {
		bios = b.st.firmware[i].Version
	}
	o := obj{
		"@odata.id":    p.id(p.systemPath()),
		"@odata.type":  "#ComputerSystem.v1_13_0.ComputerSystem",
		"Id":           p.systemID,
		"Name":         "System",
		"SystemType":   "Physical",
		"Manufacturer": p.manufacturer,
		"Model":        p.systemModel,
		"SerialNumber": p.serial,
		"SKU":          b.st.serviceTag,
		"UUID":         b.st.uuid,
		"PowerState":   b.st.power,
		"BiosVersion":  bios,
		"HostName":     "",
		"IndicatorLED": "Off",
		"Status":       obj{"Health": "OK", "HealthRollup": "OK", "State": "Enabled"},
		"Boot": obj{
			"BootSourceOverrideEnabled":                        "Disabled",
			"BootSourceOverrideMode":                           "UEFI",
			"BootSourceOverrideTarget":                         "None",
			"BootSourceOverrideTarget@Redfish.AllowableValues": []string{"None", "Pxe", "Hdd", "Cd", "BiosSetup", "UefiShell", "Usb"},
		},
		"Bios":             p.ref(p.systemPath() + "/Bios"),
		"MemorySummary":    obj{"TotalSystemMemoryGiB": 256, "Status": obj{"HealthRollup": "OK"}},
		"ProcessorSummary": obj{"Count": 2, "Model": "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", "Status": obj{"HealthRollup": "OK"}},
		"Links": obj{
			"Chassis":   []obj{p.ref(p.chassisPath())},
			"ManagedBy": []obj{p.ref(p.managerPath())},
		},
		"Actions": obj{"#ComputerSystem.Reset": obj{
			"target":                            p.id(p.systemPath() + "/Actions/ComputerSystem.Reset"),
			"ResetType@Redfish.AllowableValues": []string{"On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "PushPowerButton"},
		}},
	}
	if p.flavor == ILO {
		o["Oem"] = obj{"Hpe": obj{"@odata.type": "#HpeComputerSystemExt.v2_10_0.HpeComputerSystemExt",
			"Bios": obj{"Current": obj{"VersionString": bios}}}}
	}
	return o
}

// bios is the ComputerSystem's BIOS settings: a few attributes.
func (b *BMC) bios() obj {
	p := b.prof
	return obj{
		"@odata.id":         p.id(p.systemPath() + "/Bios"),
		"@odata.type":       "#Bios.v1_1_0.Bios",
		"Id":                "Bios",
		"Name":              "BIOS Current Settings",
		"AttributeRegistry": "BiosAttributeRegistry.v1_0",
		"Attributes": obj{
			"SerialNumber":  p.serial,
			"BootMode":      "Uefi",
			"ProcTurboMode": "Enabled",
		},
	}
}

func (b *BMC) chassis() obj {
	p := b.prof
	return obj{
		"@odata.id":    p.id(p.chassisPath()),
		"@odata.type":  "#Chassis.v1_14_0.Chassis",
		"Id":           p.chassisID,
		"Name":         "Computer System Chassis",
		"ChassisType":  "RackMount",
		"Manufacturer": p.manufacturer,
		"Model":        p.systemModel,
		"SerialNumber": p.serial,
		"PowerState":   b.st.power,
		"Status":       obj{"Health": "OK", "State": "Enabled"},
		"Links": obj{
			"ComputerSystems": []obj{p.ref(p.systemPath())},
			"ManagedBy":       []obj{p.ref(p.managerPath())},
		},
	}
}

func (b *BMC) updateService() obj {
	p := b.prof
	o := obj{
		"@odata.id":         p.id(updatePath),
		"@odata.type":       "#UpdateService.v1_11_0.UpdateService",
		"Id":                "UpdateService",
		"Name":              "Update Service",
		"Description":       "Service for Software Update",
		"ServiceEnabled":    true,
		"FirmwareInventory": p.ref(fwInvPath),
		"Status":            obj{"Health": "OK", "State": "Enabled"},
		"Actions":           obj{},
	}
	if p.simpleUpdate {
		o["Actions"] = obj{"#UpdateService.SimpleUpdate": obj{
			"target": p.id(simplePath),
			"TransferProtocol@Redfish.AllowableValues": p.protocols,
		}}
	}
	if p.httpPushURI != "" {
		o["HttpPushUri"] = p.httpPushURI
	}
	if p.multipartURI != "" {
		o["MultipartHttpPushUri"] = p.multipartURI
	}
	switch p.flavor {
	case ILO:
		o["@odata.type"] = "#UpdateService.v1_2_1.UpdateService"
		o["SoftwareInventory"] = p.ref(updatePath + "/SoftwareInventory")
		res := b.st.ilo.Result
		result := obj{"MessageId": res.ID, "MessageArgs": res.Args}
		if res.ID == "" {
			result = obj{"MessageId": p.base + ".Success", "MessageArgs": []string{}}
		} else if res.Args == nil {
			result["MessageArgs"] = []string{}
		}
		o["Oem"] = obj{"Hpe": obj{
			"@odata.type":            "#HpeiLOUpdateServiceExt.v2_1_4.HpeiLOUpdateServiceExt",
			"Accept3rdPartyFirmware": false,
			"CurrentTime":            redfishTime(b.now()),
			"DowngradePolicy":        "AllowDowngrade",
			"FlashProgressPercent":   b.st.ilo.Percent,
			"State":                  b.st.ilo.State,
			"Result":                 result,
		}}
	case IDRAC:
		o["MaxImageSizeBytes"] = 4 << 30
		o["MultipartHttpPushUriOptions"] = obj{"@Redfish.OperationApplyTime@Redfish.AllowableValues": []string{"Immediate", "OnReset"}}
	case OpenBMC:
		o["HttpPushUriOptions"] = obj{"HttpPushUriApplyTime": obj{
			"ApplyTime":                         "Immediate",
			"ApplyTime@Redfish.AllowableValues": []string{"Immediate", "OnReset"},
		}}
	}
	return o
}

func (b *BMC) firmwareCollection() obj {
	paths := make([]string, len(b.st.firmware))
	for i, f := range b.st.firmware {
		paths[i] = fwInvPath + "/" + f.ID
	}
	return b.collection(fwInvPath, "#SoftwareInventoryCollection.SoftwareInventoryCollection", "Firmware Inventory Collection", paths)
}

func (b *BMC) firmwareResource(id string) (obj, bool) {
	i := b.st.firmwareByID(id)
	if i < 0 {
		return nil, false
	}
	f := b.st.firmware[i]
	p := b.prof
	o := obj{
		"@odata.id":   p.id(fwInvPath + "/" + f.ID),
		"@odata.type": "#SoftwareInventory.v1_2_0.SoftwareInventory",
		"Id":          f.ID,
		"Name":        f.Name,
		"Description": f.Name,
		"Version":     f.Version,
		"Updateable":  f.Updateable,
		"Status":      obj{"Health": "OK", "State": "Enabled"},
	}
	if o["Name"] == "" {
		o["Name"] = f.ID
	}
	if f.SoftwareID != "" {
		o["SoftwareId"] = f.SoftwareID
	}
	switch {
	case f.Manager:
		o["RelatedItem"] = []obj{p.ref(p.managerPath())}
	case f.BIOS:
		o["RelatedItem"] = []obj{p.ref(p.systemPath())}
	}
	if p.flavor == IDRAC {
		if strings.HasPrefix(f.ID, "Previous-") {
			o["Status"] = obj{"Health": "OK", "State": "Disabled"}
		}
	}
	return o, true
}

// resourceDirectory is iLO's index of its resources, which ilorest uses to
// find resources by type.
func (b *BMC) resourceDirectory() obj {
	p := b.prof
	var inst []obj
	add := func(path string, o obj) {
		inst = append(inst, obj{"@odata.id": p.id(path), "@odata.type": o["@odata.type"], "ETag": etagOfObj(o),
			"HttpMethods": []string{"GET", "HEAD"}})
	}
	add(rootPath, b.serviceRoot())
	add("/redfish/v1/SessionService", b.sessionService())
	add(sessionsPath, b.sessionCollection())
	add("/redfish/v1/AccountService", b.accountService())
	add("/redfish/v1/AccountService/Accounts", b.accountCollection())
	acc, _ := b.account(b.accountID())
	add("/redfish/v1/AccountService/Accounts/"+b.accountID(), acc)
	add("/redfish/v1/Managers", b.managerCollection())
	add(p.managerPath(), b.manager())
	add("/redfish/v1/Systems", b.systemCollection())
	add(p.systemPath(), b.system())
	add(p.systemPath()+"/Bios", b.bios())
	add("/redfish/v1/Chassis", b.chassisCollection())
	add(p.chassisPath(), b.chassis())
	add(updatePath, b.updateService())
	add(fwInvPath, b.firmwareCollection())
	for _, f := range b.st.firmware {
		o, _ := b.firmwareResource(f.ID)
		add(fwInvPath+"/"+f.ID, o)
	}
	add("/redfish/v1/TaskService", b.taskService())
	add(tasksPath, b.taskCollection())
	return obj{
		"@odata.id":   p.id("/redfish/v1/ResourceDirectory"),
		"@odata.type": "#HpeiLOResourceDirectory.v2_0_0.HpeiLOResourceDirectory",
		"Id":          "ResourceDirectory",
		"Name":        "Resource Directory",
		"Instances":   inst,
	}
}

func (b *BMC) taskService() obj {
	p := b.prof
	return obj{
		"@odata.id":                       p.id("/redfish/v1/TaskService"),
		"@odata.type":                     "#TaskService.v1_1_4.TaskService",
		"Id":                              "TaskService",
		"Name":                            "Task Service",
		"ServiceEnabled":                  true,
		"CompletedTaskOverWritePolicy":    "Oldest",
		"LifeCycleEventOnTaskStateChange": true,
		"DateTime":                        redfishTime(b.now()),
		"Status":                          obj{"Health": "OK", "State": "Enabled"},
		"Tasks":                           p.ref(tasksPath),
	}
}

func (b *BMC) taskCollection() obj {
	var paths []string
	for _, j := range b.st.jobs {
		if !j.taskGone {
			paths = append(paths, tasksPath+"/"+j.id)
		}
	}
	return b.collection(tasksPath, "#TaskCollection.TaskCollection", "Task Collection", paths)
}

func (b *BMC) jobService() obj {
	p := b.prof
	return obj{
		"@odata.id":      p.id("/redfish/v1/JobService"),
		"@odata.type":    "#JobService.v1_0_3.JobService",
		"Id":             "JobService",
		"Name":           "Job Service",
		"ServiceEnabled": true,
		"DateTime":       redfishTime(b.now()),
		"Jobs":           p.ref(jobsPath),
		"Status":         obj{"Health": "OK", "State": "Enabled"},
	}
}

func (b *BMC) jobCollection(base string) obj {
	var paths []string
	for _, j := range b.st.jobs {
		paths = append(paths, base+"/"+j.id)
	}
	return b.collection(base, "#DellJobCollection.DellJobCollection", "JobQueue", paths)
}
