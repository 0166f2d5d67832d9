//! Worker side of RDMA: devices, registered regions, and one queue pair per client connection.

use std::sync::Arc;

use super::verbs::{
    Access, CompletionQueue, Context, LocalPort, MemoryRegion, ProtectionDomain, QueuePair, Remote, device_names,
};
use super::{RdmaError, ServerSettings, pick_gid};
use crate::region::StableMemory;
use crate::wire::{RdmaConnected, RdmaEndpoint, RdmaRegion, RdmaWords};

/// The port every device is used through.
const PORT: u8 = 1;

/// A worker's RDMA devices and the regions registered on each.
#[derive(Debug)]
pub struct RdmaServer {
    devices: Vec<Device>,
}

#[derive(Debug)]
struct Device {
    /// Its completion queue is never polled: a responder of READs completes nothing, but a queue
    /// pair needs a queue.
    end: PortEnd,
    regions: Vec<Registered>,
}

/// An open device used through port 1, as either end of a queue pair uses it: the device, a
/// protection domain, a completion queue, and the port's GID and LID.
#[derive(Debug)]
pub(super) struct PortEnd {
    pub context: Arc<Context>,
    pub pd: Arc<ProtectionDomain>,
    pub cq: Arc<CompletionQueue>,
    pub port: LocalPort,
    gid: [u8; 16],
    lid: u16,
}

impl PortEnd {
    /// Open device `name`, its port 1 (active, with the GID `gid_index` asks for), a protection
    /// domain and a completion queue of `depth` entries (with an event channel if `events`).
    pub(super) fn open(name: &str, gid_index: Option<u32>, depth: u32, events: bool) -> Result<PortEnd, RdmaError> {
        let context = Context::open(name)?;
        let (port, gid, lid) = open_port(&context, gid_index)?;
        let pd = context.protection_domain()?;
        let cq = context.completion_queue(depth, events)?;
        Ok(PortEnd {
            context,
            pd,
            cq,
            port,
            gid,
            lid,
        })
    }

    /// This end of `qp`, starting at `psn`, as the other end needs it.
    pub(super) fn endpoint(&self, qp: &QueuePair, psn: u32) -> RdmaEndpoint {
        RdmaEndpoint {
            qpn: qp.qpn(),
            psn,
            gid: self.gid.to_vec(),
            lid: self.lid,
            mtu: self.port.mtu,
        }
    }

    /// Connect `qp` (sending from `psn`) to the other end `remote`.
    ///
    /// # Errors
    /// A GID that is not 16 bytes; the verbs' errors.
    pub(super) fn connect(&self, qp: &QueuePair, remote: &RdmaEndpoint, psn: u32) -> Result<(), RdmaError> {
        let gid: [u8; 16] = remote
            .gid
            .as_slice()
            .try_into()
            .map_err(|_| RdmaError::Protocol(format!("a GID of {} bytes", remote.gid.len())))?;
        let remote = Remote {
            qpn: remote.qpn,
            psn: remote.psn,
            gid,
            lid: remote.lid,
            mtu: remote.mtu,
        };
        qp.connect(self.port, &remote, psn)
    }
}

#[derive(Debug)]
struct Registered {
    id: u32,
    data: MemoryRegion,
    generations: Option<(MemoryRegion, u64)>,
}

/// The worker's end of one client's queue pair: destroyed with the connection that set it up.
#[derive(Debug)]
pub struct ServerQp {
    _qp: Arc<QueuePair>,
}

impl RdmaServer {
    /// Open the devices `settings` names (all, when none is named) that have an active port.
    ///
    /// # Errors
    /// [`RdmaError::Unavailable`] when no device can be used (with the reason), or a verbs error
    /// on a device that was asked for by name.
    pub fn open(settings: &ServerSettings) -> Result<RdmaServer, RdmaError> {
        let names = device_names()?;
        if names.is_empty() {
            return Err(RdmaError::Unavailable("no RDMA device on this host".into()));
        }
        for wanted in &settings.devices {
            if !names.contains(wanted) {
                return Err(RdmaError::Unavailable(format!(
                    "no RDMA device named `{wanted}` (there are: {})",
                    names.join(", ")
                )));
            }
        }
        let mut devices = Vec::new();
        let mut skipped = Vec::new();
        for name in names {
            if !settings.devices.is_empty() && !settings.devices.contains(&name) {
                continue;
            }
            match Device::open(&name, settings.gid_index) {
                Ok(device) => devices.push(device),
                Err(e) if settings.devices.is_empty() => skipped.push(format!("{name}: {e}")),
                Err(e) => return Err(e),
            }
        }
        if devices.is_empty() {
            return Err(RdmaError::Unavailable(format!(
                "no usable RDMA device ({})",
                skipped.join("; ")
            )));
        }
        Ok(RdmaServer { devices })
    }

    /// The devices in use.
    pub fn device_names(&self) -> Vec<String> {
        self.devices.iter().map(|d| d.end.context.name().to_owned()).collect()
    }

    /// Register region `id` (`data`, and its generation words with the bytes each stands for) on
    /// every device, for remote reads.
    ///
    /// # Errors
    /// [`RdmaError::Register`] (mostly: the locked-memory limit).
    pub fn register(
        &mut self,
        id: u32,
        data: Arc<dyn StableMemory>,
        generations: Option<(Arc<dyn StableMemory>, u64)>,
    ) -> Result<(), RdmaError> {
        for device in &mut self.devices {
            let region = device.end.pd.register(data.clone(), Access::RemoteRead)?;
            let words = match &generations {
                Some((words, unit)) => Some((device.end.pd.register(words.clone(), Access::RemoteRead)?, *unit)),
                None => None,
            };
            device.regions.push(Registered {
                id,
                data: region,
                generations: words,
            });
        }
        Ok(())
    }

    /// Bytes registered (on each device).
    pub fn registered_bytes(&self) -> u64 {
        self.devices.first().map_or(0, |d| {
            d.regions
                .iter()
                .map(|r| r.data.len() + r.generations.as_ref().map_or(0, |(w, _)| w.len()))
                .sum()
        })
    }

    /// Set up the worker's end of a queue pair with the client's end `client`, and say what the
    /// client needs: the worker's end and the regions' addresses and keys. The first device is
    /// used.
    ///
    /// # Errors
    /// A malformed endpoint, or a verbs call that fails.
    pub fn accept(&self, client: &RdmaEndpoint) -> Result<(RdmaConnected, ServerQp), RdmaError> {
        let device = &self.devices[0];
        let end = &device.end;
        let qp = QueuePair::create(&end.pd, &end.cq, 1, PORT, true)?;
        let psn = super::client::new_psn(qp.qpn());
        end.connect(&qp, client, psn)?;
        let regions = device
            .regions
            .iter()
            .map(|r| RdmaRegion {
                id: r.id,
                addr: r.data.addr(),
                len: r.data.len(),
                rkey: r.data.rkey(),
                generations: r.generations.as_ref().map(|(w, unit)| RdmaWords {
                    addr: w.addr(),
                    len: w.len(),
                    rkey: w.rkey(),
                    min_block: *unit,
                }),
            })
            .collect();
        let connected = RdmaConnected {
            device: end.context.name().to_owned(),
            endpoint: end.endpoint(&qp, psn),
            regions,
        };
        Ok((connected, ServerQp { _qp: qp }))
    }
}

impl Device {
    fn open(name: &str, gid_index: Option<u32>) -> Result<Device, RdmaError> {
        Ok(Device {
            end: PortEnd::open(name, gid_index, 16, false)?,
            regions: Vec::new(),
        })
    }
}

/// Port 1 of `context`, if active, with the GID to use and the LID.
fn open_port(context: &Context, gid_index: Option<u32>) -> Result<(LocalPort, [u8; 16], u16), RdmaError> {
    let info = context.port(PORT)?;
    if !info.active {
        return Err(RdmaError::Unavailable(format!(
            "port {PORT} of {} is not active",
            context.name()
        )));
    }
    let gids = (0..info.gids).filter_map(|i| context.gid(PORT, i).ok().map(|g| (i, g, roce_v2(context.name(), i))));
    let (index, gid) = pick_gid(gid_index, gids).ok_or_else(|| {
        RdmaError::Unavailable(match gid_index {
            Some(i) => format!("{} has no GID at index {i}", context.name()),
            None => format!("{} has no GID", context.name()),
        })
    })?;
    let port = LocalPort {
        port: PORT,
        gid_index: u8::try_from(index).map_err(|_| RdmaError::Unavailable(format!("GID index {index}")))?,
        mtu: info.mtu,
    };
    Ok((port, gid, info.lid))
}

/// Whether GID `index` of port 1 of `device` is RoCE v2, as sysfs says (`None`: it does not).
fn roce_v2(device: &str, index: u32) -> Option<bool> {
    let path = format!("/sys/class/infiniband/{device}/ports/{PORT}/gid_attrs/types/{index}");
    let kind = std::fs::read_to_string(path).ok()?;
    Some(kind.trim().eq_ignore_ascii_case("RoCE v2"))
}
