"""Reads a Redfish service with sushy, for bmcsim's client test.

Usage: sushy_read.py URL USER PASSWORD

Prints one line per thing read; sushy raises on anything it finds
malformed. Closes its session at the end.
"""
import sys

import sushy

url, user, password = sys.argv[1:4]
root = sushy.Sushy(url + "/redfish/v1", username=user, password=password, verify=False)
system = root.get_system()
print("system", system.identity, system.manufacturer, system.serial_number,
      system.power_state, system.bios_version, system.boot.mode)
manager = root.get_manager()
print("manager", manager.identity, manager.model, manager.firmware_version)
update = root.get_update_service()
print("update", update.identity, update.service_enabled, update.http_push_uri)
for fw in update.firmware_inventory.get_members():
    print("firmware", fw.identity, fw.version, fw.updateable)
root._auth.close()
print("closed")
