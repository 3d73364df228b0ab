"""The openstack driver's DNS verbs: records in Designate, in the clouds of the driver's productions.

`switch_dns(record)` and `get_dns(name)` find the Designate zone that holds the
name: the longest zone name that ends the record's name, among the zones of every
(cloud, region) an openstack production names in doppel.yaml, searched in the
productions' order. The zone's project is the production's project as clouds.yaml
authenticates it, so a zone of another project (the DR side's, a customer's) is
never found nor touched from here. The verbs themselves are `clouds.dns.designate`'s
provider: the switch waits until Designate's workers have pushed it to the DNS
servers (recordset ACTIVE).

A DR policy that switches names in the DR cloud's Designate names the provider
instead (`dns.provider: {type: designate, cloud: ..., zone: ...}`, docs/dns.md).
"""
from __future__ import annotations

from clouds.dns.designate import DesignateProvider
from core.cloud import DnsRecord, DriverError
from core.dns import DnsError, normalise_name

# What get_dns(name) reads, in this order: a name has one of these (a CNAME excludes the others).
GET_TYPES = ("A", "AAAA", "CNAME")


class DnsVerbs:
    """The DNS verbs of `OpenStackDriver` (clouds.openstack.driver), which gives them its productions and
    connections (`productions`, `_conn`)."""

    def switch_dns(self, record: DnsRecord) -> DnsRecord | None:
        """Point the name at the record's value in the Designate zone that holds it; the record it replaced."""
        provider = self._designate_for(record.name)
        if provider is None:
            raise DriverError(f"no Designate zone of the openstack productions' clouds ({self._dns_places()}) holds "
                              f"{normalise_name(record.name)}; create the zone in the production's project (openstack "
                              "zone create), or configure a DNS provider for it (docs/dns.md)", permanent=True)
        return provider.switch(record)

    def get_dns(self, name: str) -> DnsRecord | None:
        """The A, AAAA or CNAME record at the name in Designate, or None (also when no zone holds it)."""
        provider = self._designate_for(name)
        if provider is None:
            return None
        for record_type in GET_TYPES:
            found = provider.get(name, record_type)
            if found is not None:
                return found
        return None

    def _designate_for(self, name: str) -> DesignateProvider | None:
        """A provider for the zone holding `name`: the longest matching zone in the first place that has one."""
        wanted = normalise_name(name) + "."
        for spec in self._dns_specs():
            conn = self._conn(spec)
            zones = self._dns_call(spec, "list the Designate zones", lambda conn=conn: [
                zone.name for zone in conn.dns.zones()])
            holding = [zone for zone in zones if wanted == zone or wanted.endswith("." + zone)]
            if holding:
                return DesignateProvider(conn, max(holding, key=len), cloud=spec["cloud"])
        return None

    def _dns_specs(self) -> list:
        seen, specs = set(), []
        for spec in self.productions.values():
            where = (spec["cloud"], spec.get("region"))
            if where not in seen:
                seen.add(where)
                specs.append(spec)
        if not specs:
            raise DriverError("no production uses the openstack driver, so it has no Designate to switch names in",
                              permanent=True)
        return specs

    def _dns_places(self) -> str:
        return ", ".join(f"{spec['cloud']}" + (f" {spec['region']}" if spec.get("region") else "")
                         for spec in self._dns_specs())

    @staticmethod
    def _dns_call(spec, what: str, action):
        from openstack import exceptions

        where = f"cloud {spec['cloud']}" + (f" region {spec['region']}" if spec.get("region") else "")
        try:
            return action()
        except (exceptions.EndpointNotFound, exceptions.ServiceDisabledException):
            raise DnsError(f"{where} has no DNS (Designate) endpoint in its catalog; configure a DNS provider "
                           "instead (docs/dns.md)", permanent=True) from None
        except exceptions.HttpException as exc:
            status = getattr(exc, "status_code", None)
            permanent = status is not None and 400 <= status < 500 and status not in (408, 409, 429)
            raise DnsError(f"could not {what} in {where}: HTTP {status}: {exc.details or exc}",
                           permanent=permanent) from None
        except exceptions.SDKException as exc:
            raise DnsError(f"could not {what} in {where}: {exc}; check clouds.yaml", permanent=False) from None
