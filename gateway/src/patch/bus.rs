//! The patch bus: which member hears which, patch by patch.
//!
//! Contract, for every frame a member's receive side passes in:
//!
//! * it reaches the other members of each patch where that member holds the floor, and
//!   no member of a patch where it does not ([`super::floor`]);
//! * it never goes back to the member it came from;
//! * a member whose own carrier is open gets nothing: it is half duplex and busy
//!   receiving, and keying it would cut off its own talker;
//! * a member in two patches is fed by one patch at a time: the first to send it audio
//!   keeps it until that patch's floor is free again;
//! * in a simulselect patch the console reaches every member and the members reach
//!   only the console.
//!
//! Patches are checked when made or changed: known members, at least one that can
//! talk, a number of their own, and no loop: the graph of patches and their members
//! stays a forest, so no two patches share two members and no chain of patches comes
//! back to where it started. Audio could otherwise circle between them.
//!
//! Sans-IO, like the floor: feed [`PatchBus::on_carrier`] and [`PatchBus::on_audio`],
//! call [`PatchBus::poll`] at [`PatchBus::next_deadline`], carry out
//! [`PatchBus::drain`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use drivers::radio::ptt::Frame;

use super::floor::{Floor, FloorEvent, FloorSettings};
use super::{MemberId, MemberKind, PatchMode, PatchSpec};

/// What the bus knows of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberInfo {
    pub kind: MemberKind,
    /// A dispatcher: pre-empts other talkers on the floor.
    pub priority: bool,
}

/// What the node must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusOutput {
    /// Send this frame to `to`'s transmit side.
    Transmit {
        to: MemberId,
        patch: String,
        frame: Frame,
    },
    /// `from` holds the floor of `patch` and said this: for the recorder.
    Carried {
        patch: String,
        from: MemberId,
        frame: Frame,
    },
    /// Something changed on a patch's floor.
    Floor { patch: String, event: FloorEvent },
    /// `member`'s carrier was stuck open on `patch`; it is ignored on every patch until
    /// its carrier drops.
    LockedOut { member: MemberId, patch: String },
    /// `member`'s carrier dropped after a lock-out: it may talk again.
    LockoutCleared { member: MemberId },
}

/// Why a patch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("patch {patch}: no member named {member}")]
    UnknownMember { patch: String, member: MemberId },
    #[error("patch {patch}: {member} is listed twice")]
    DuplicateMember { patch: String, member: MemberId },
    #[error("patch {patch}: a patch needs at least two members")]
    TooFewMembers { patch: String },
    #[error("patch {patch}: no member can talk (loudspeaker zones only play)")]
    NoSource { patch: String },
    #[error("patch {patch}: the simulselect console {console} must be a member that talks")]
    BadConsole { patch: String, console: MemberId },
    #[error("patch {patch}: number {number} is patch {other}'s")]
    NumberTaken {
        patch: String,
        number: u16,
        other: String,
    },
    #[error(
        "patch {patch}: {member} is already joined to the patch through other patches, so audio would loop"
    )]
    Loop { patch: String, member: MemberId },
    #[error("no patch named {0}")]
    UnknownPatch(String),
    #[error("no patch numbered {0}")]
    UnknownNumber(u16),
    #[error("patch {0} comes from the configuration; change it there and reload")]
    Permanent(String),
    #[error("patch name must be 1 to 64 letters, digits, '-' or '_': {0:?}")]
    BadName(String),
    #[error("the change is in force but was not stored, so it will not survive a restart: {0}")]
    NotStored(String),
}

/// Frames the bus did not pass on, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusCounters {
    /// Frames handed to a member's transmit side.
    pub transmitted: u64,
    /// Frames from a member held off the floor.
    pub held_off: u64,
    /// Frames not sent to a member because another patch feeds it, or it is receiving.
    pub target_busy: u64,
    /// Frames from a locked-out member.
    pub locked_out: u64,
}

#[derive(Debug, Clone)]
struct Patch {
    spec: PatchSpec,
    floor: Floor,
}

/// The patches of one node; see the [module](self) contract.
#[derive(Debug)]
pub struct PatchBus {
    settings: FloorSettings,
    members: BTreeMap<MemberId, MemberInfo>,
    patches: BTreeMap<String, Patch>,
    /// Members whose carrier is open now.
    keyed: BTreeSet<MemberId>,
    locked_out: BTreeSet<MemberId>,
    /// Members whose current transmission is not for the patch (it carried a DTMF
    /// command): heard by nobody until their carrier drops.
    ignored: BTreeSet<MemberId>,
    /// Which patch feeds each member's transmit side.
    tx_owner: BTreeMap<MemberId, String>,
    counters: BusCounters,
    out: Vec<BusOutput>,
}

impl PatchBus {
    pub fn new(
        settings: FloorSettings,
        members: impl IntoIterator<Item = (MemberId, MemberInfo)>,
    ) -> PatchBus {
        PatchBus {
            settings,
            members: members.into_iter().collect(),
            patches: BTreeMap::new(),
            keyed: BTreeSet::new(),
            locked_out: BTreeSet::new(),
            ignored: BTreeSet::new(),
            tx_owner: BTreeMap::new(),
            counters: BusCounters::default(),
            out: Vec::new(),
        }
    }

    pub fn counters(&self) -> BusCounters {
        self.counters
    }

    pub fn member(&self, id: &MemberId) -> Option<MemberInfo> {
        self.members.get(id).copied()
    }

    /// Every patch, by name, with the member holding its floor.
    pub fn patches(&self) -> impl Iterator<Item = (&PatchSpec, Option<&MemberId>)> {
        self.patches.values().map(|p| (&p.spec, p.floor.holder()))
    }

    pub fn patch(&self, name: &str) -> Option<&PatchSpec> {
        self.patches.get(name).map(|p| &p.spec)
    }

    pub fn patch_numbered(&self, number: u16) -> Option<&PatchSpec> {
        self.patches
            .values()
            .map(|p| &p.spec)
            .find(|s| s.number == number)
    }

    /// The lowest patch number not in use, from 1.
    pub fn free_number(&self) -> u16 {
        let used: BTreeSet<u16> = self.patches.values().map(|p| p.spec.number).collect();
        (1..=u16::MAX).find(|n| !used.contains(n)).unwrap_or(0)
    }

    pub fn is_locked_out(&self, member: &MemberId) -> bool {
        self.locked_out.contains(member)
    }

    /// Replaces the members known to the bus (a reload). A patch that loses a member
    /// goes on without it; one left with fewer than two members, or none that talks,
    /// is removed. Gives the names of the patches removed.
    pub fn set_members(
        &mut self,
        members: impl IntoIterator<Item = (MemberId, MemberInfo)>,
        now: Instant,
    ) -> Vec<String> {
        self.members = members.into_iter().collect();
        let gone: Vec<MemberId> = self
            .keyed
            .iter()
            .filter(|m| !self.members.contains_key(*m))
            .cloned()
            .collect();
        for member in gone {
            self.on_carrier(&member, false, now);
            self.keyed.remove(&member);
            self.locked_out.remove(&member);
        }
        let mut removed = Vec::new();
        let names: Vec<String> = self.patches.keys().cloned().collect();
        for name in names {
            let Some(mut spec) = self.patches.get(&name).map(|p| p.spec.clone()) else {
                continue;
            };
            spec.members.retain(|m| self.members.contains_key(m));
            // A simulselect without its console must not become a patch that joins
            // talkgroups meant to stay apart: it goes.
            let console_gone = matches!(&spec.mode, PatchMode::Simulselect { console } if !spec.members.contains(console));
            if console_gone || self.upsert(spec, now).is_err() {
                let _ = self.remove(&name, true, now);
                removed.push(name);
            }
        }
        removed
    }

    /// Checks `spec` as if it replaced any patch of the same name.
    pub fn check(&self, spec: &PatchSpec) -> Result<(), PatchError> {
        let patch = || spec.name.clone();
        let name_ok = !spec.name.is_empty()
            && spec.name.len() <= 64
            && spec
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(PatchError::BadName(spec.name.clone()));
        }
        let mut seen = BTreeSet::new();
        for member in &spec.members {
            if !self.members.contains_key(member) {
                return Err(PatchError::UnknownMember {
                    patch: patch(),
                    member: member.clone(),
                });
            }
            if !seen.insert(member) {
                return Err(PatchError::DuplicateMember {
                    patch: patch(),
                    member: member.clone(),
                });
            }
        }
        if spec.members.len() < 2 {
            return Err(PatchError::TooFewMembers { patch: patch() });
        }
        let talks = |m: &MemberId| self.members.get(m).is_some_and(|i| i.kind.is_source());
        if !spec.members.iter().any(talks) {
            return Err(PatchError::NoSource { patch: patch() });
        }
        if let PatchMode::Simulselect { console } = &spec.mode
            && (!spec.members.contains(console) || !talks(console))
        {
            return Err(PatchError::BadConsole {
                patch: patch(),
                console: console.clone(),
            });
        }
        if let Some(other) = self
            .patches
            .values()
            .find(|p| p.spec.number == spec.number && p.spec.name != spec.name)
        {
            return Err(PatchError::NumberTaken {
                patch: patch(),
                number: spec.number,
                other: other.spec.name.clone(),
            });
        }
        self.check_no_loop(spec)
    }

    /// Adds `spec`, or changes the patch of that name to it. A change keeps the floor
    /// and the audio flowing to members that stay; a member that keyed before the
    /// patch existed is heard at once.
    pub fn upsert(&mut self, spec: PatchSpec, now: Instant) -> Result<(), PatchError> {
        self.check(&spec)?;
        let name = spec.name.clone();
        let keyed_members: Vec<MemberId> = spec
            .members
            .iter()
            .filter(|m| {
                self.keyed.contains(*m)
                    && !self.locked_out.contains(*m)
                    && !self.ignored.contains(*m)
            })
            .cloned()
            .collect();

        let mut floor = match self.patches.remove(&name) {
            Some(old) => {
                let mut floor = old.floor;
                for gone in old
                    .spec
                    .members
                    .iter()
                    .filter(|m| !spec.members.contains(m))
                {
                    let events = floor.remove(gone, now);
                    self.release_tx(gone, &name);
                    self.floor_events(&name, events, now);
                }
                floor
            }
            None => Floor::new(self.settings),
        };
        for member in &keyed_members {
            let priority = self.priority(member);
            let events = floor.key(member, priority, now);
            self.floor_events(&name, events, now);
        }
        self.patches.insert(name, Patch { spec, floor });
        Ok(())
    }

    /// Removes a live patch. Permanent patches are refused unless `permanent_too`
    /// (a reload that dropped them from the configuration).
    pub fn remove(
        &mut self,
        name: &str,
        permanent_too: bool,
        now: Instant,
    ) -> Result<PatchSpec, PatchError> {
        match self.patches.get(name) {
            None => return Err(PatchError::UnknownPatch(name.to_owned())),
            Some(p) if p.spec.permanent && !permanent_too => {
                return Err(PatchError::Permanent(name.to_owned()));
            }
            Some(_) => {}
        }
        let Some(mut patch) = self.patches.remove(name) else {
            return Err(PatchError::UnknownPatch(name.to_owned()));
        };
        let events = patch.floor.clear(now);
        self.floor_events(name, events, now);
        self.tx_owner.retain(|_, owner| owner != name);
        Ok(patch.spec)
    }

    /// `member`'s carrier opened (`true`) or dropped.
    pub fn on_carrier(&mut self, member: &MemberId, open: bool, now: Instant) {
        if open {
            if !self.keyed.insert(member.clone()) || self.locked_out.contains(member) {
                return;
            }
            // Its transmit side is no longer anyone's to feed.
            self.tx_owner.remove(member);
            let priority = self.priority(member);
            for name in self.patches_of(member) {
                if let Some(patch) = self.patches.get_mut(&name) {
                    let events = patch.floor.key(member, priority, now);
                    self.floor_events(&name, events, now);
                }
            }
        } else {
            if !self.keyed.remove(member) {
                return;
            }
            self.ignored.remove(member);
            if self.locked_out.remove(member) {
                self.out.push(BusOutput::LockoutCleared {
                    member: member.clone(),
                });
                return;
            }
            for name in self.patches_of(member) {
                if let Some(patch) = self.patches.get_mut(&name) {
                    let events = patch.floor.unkey(member, now);
                    self.floor_events(&name, events, now);
                }
            }
        }
    }

    /// Takes `member`'s current transmission off every patch without pretending its
    /// carrier dropped: it stays busy (nothing is sent to it) and is heard again from its
    /// next over.
    pub fn ignore_until_drop(&mut self, member: &MemberId, now: Instant) {
        if !self.keyed.contains(member) || !self.ignored.insert(member.clone()) {
            return;
        }
        for name in self.patches_of(member) {
            if let Some(patch) = self.patches.get_mut(&name) {
                let events = patch.floor.remove(member, now);
                self.floor_events(&name, events, now);
            }
        }
    }

    /// One frame heard by `member` while its carrier is open.
    pub fn on_audio(&mut self, member: &MemberId, frame: Frame) {
        if self.locked_out.contains(member) {
            self.counters.locked_out += 1;
            return;
        }
        if self.ignored.contains(member) {
            return;
        }
        if !self.keyed.contains(member) {
            return;
        }
        let mut carried = false;
        for patch in self.patches.values() {
            if patch.floor.holder() != Some(member) {
                continue;
            }
            carried = true;
            let name = &patch.spec.name;
            self.out.push(BusOutput::Carried {
                patch: name.clone(),
                from: member.clone(),
                frame: frame.clone(),
            });
            for to in targets(&patch.spec, member) {
                let owner = self.tx_owner.get(to);
                let free = owner.is_none_or(|o| o == name) && !self.keyed.contains(to);
                if !free {
                    self.counters.target_busy += 1;
                    continue;
                }
                if owner.is_none() {
                    self.tx_owner.insert(to.clone(), name.clone());
                }
                self.counters.transmitted += 1;
                self.out.push(BusOutput::Transmit {
                    to: to.clone(),
                    patch: name.clone(),
                    frame: frame.clone(),
                });
            }
        }
        let in_a_patch = || {
            self.patches
                .values()
                .any(|p| p.spec.members.contains(member))
        };
        if !carried && in_a_patch() {
            self.counters.held_off += 1;
        }
    }

    /// Runs the floors' timers due at `now`.
    pub fn poll(&mut self, now: Instant) {
        let names: Vec<String> = self.patches.keys().cloned().collect();
        for name in names {
            if let Some(patch) = self.patches.get_mut(&name) {
                let events = patch.floor.poll(now);
                self.floor_events(&name, events, now);
            }
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.patches
            .values()
            .filter_map(|p| p.floor.next_deadline())
            .min()
    }

    /// What to do, in order.
    pub fn drain(&mut self) -> std::vec::Drain<'_, BusOutput> {
        self.out.drain(..)
    }

    /// The floor hang time and stuck-carrier time in force.
    pub fn settings(&self) -> FloorSettings {
        self.settings
    }

    /// New floor timing for every patch (a reload).
    pub fn set_settings(&mut self, settings: FloorSettings) {
        self.settings = settings;
        for patch in self.patches.values_mut() {
            patch.floor.set_settings(settings);
        }
    }

    fn priority(&self, member: &MemberId) -> bool {
        self.members.get(member).is_some_and(|i| i.priority)
    }

    fn patches_of(&self, member: &MemberId) -> Vec<String> {
        self.patches
            .values()
            .filter(|p| p.spec.members.contains(member))
            .map(|p| p.spec.name.clone())
            .collect()
    }

    fn release_tx(&mut self, member: &MemberId, patch: &str) {
        if self.tx_owner.get(member).is_some_and(|o| o == patch) {
            self.tx_owner.remove(member);
        }
    }

    fn floor_events(&mut self, patch: &str, events: Vec<FloorEvent>, now: Instant) {
        for event in events {
            match &event {
                FloorEvent::Freed => self.tx_owner.retain(|_, owner| owner != patch),
                FloorEvent::StuckCarrier { member, .. } => {
                    self.lock_out(member.clone(), patch, now);
                }
                _ => {}
            }
            self.out.push(BusOutput::Floor {
                patch: patch.to_owned(),
                event,
            });
        }
    }

    fn lock_out(&mut self, member: MemberId, patch: &str, now: Instant) {
        if !self.locked_out.insert(member.clone()) {
            return;
        }
        self.out.push(BusOutput::LockedOut {
            member: member.clone(),
            patch: patch.to_owned(),
        });
        for name in self.patches_of(&member) {
            if name == patch {
                continue;
            }
            if let Some(other) = self.patches.get_mut(&name) {
                let events = other.floor.remove(&member, now);
                self.floor_events(&name, events, now);
            }
        }
    }

    fn check_no_loop(&self, spec: &PatchSpec) -> Result<(), PatchError> {
        // Union-find over patches and members: a new edge between two nodes already
        // connected closes a cycle.
        let mut sets = Sets::default();
        for patch in self.patches.values().filter(|p| p.spec.name != spec.name) {
            let p = sets.id(&format!("patch:{}", patch.spec.name));
            for member in &patch.spec.members {
                let m = sets.id(&format!("member:{member}"));
                sets.union(p, m);
            }
        }
        let p = sets.id(&format!("patch:{}", spec.name));
        for member in &spec.members {
            let m = sets.id(&format!("member:{member}"));
            if !sets.union(p, m) {
                return Err(PatchError::Loop {
                    patch: spec.name.clone(),
                    member: member.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Who hears `from` on `patch`.
fn targets<'a>(patch: &'a PatchSpec, from: &'a MemberId) -> Vec<&'a MemberId> {
    match &patch.mode {
        PatchMode::Simulselect { console } if console != from => vec![console],
        _ => patch.members.iter().filter(|m| *m != from).collect(),
    }
}

#[derive(Default)]
struct Sets {
    index: BTreeMap<String, usize>,
    parent: Vec<usize>,
}

impl Sets {
    fn id(&mut self, key: &str) -> usize {
        if let Some(&k) = self.index.get(key) {
            return k;
        }
        let k = self.parent.len();
        self.parent.push(k);
        self.index.insert(key.to_owned(), k);
        k
    }

    fn root(&mut self, mut k: usize) -> usize {
        while self.parent[k] != k {
            self.parent[k] = self.parent[self.parent[k]];
            k = self.parent[k];
        }
        k
    }

    /// Joins the sets of `a` and `b`; false when they were one set already.
    fn union(&mut self, a: usize, b: usize) -> bool {
        let (ra, rb) = (self.root(a), self.root(b));
        if ra == rb {
            return false;
        }
        self.parent[ra] = rb;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const HANG: Duration = Duration::from_millis(1000);

    fn m(name: &str) -> MemberId {
        MemberId::from(name)
    }

    fn bus() -> (PatchBus, Instant) {
        let member = |name: &str, kind, priority| (m(name), MemberInfo { kind, priority });
        let bus = PatchBus::new(
            FloorSettings {
                hang: HANG,
                stuck_carrier: Duration::from_secs(30),
            },
            [
                member("tg-1", MemberKind::Radio, false),
                member("tg-2", MemberKind::Radio, false),
                member("tg-3", MemberKind::Radio, false),
                member("dispatch", MemberKind::Radio, true),
                member("street-2", MemberKind::Link, false),
                member("east", MemberKind::Zone, false),
            ],
        );
        (bus, Instant::now())
    }

    fn patch(name: &str, number: u16, members: &[&str]) -> PatchSpec {
        PatchSpec {
            name: name.into(),
            number,
            members: members.iter().map(|n| m(n)).collect(),
            mode: PatchMode::Patch,
            permanent: false,
        }
    }

    /// The members each frame reached, in order, with the frame's first sample.
    fn sent(bus: &mut PatchBus) -> Vec<(String, i16)> {
        bus.drain()
            .filter_map(|out| match out {
                BusOutput::Transmit { to, frame, .. } => Some((to.0, frame[0])),
                _ => None,
            })
            .collect()
    }

    fn frame(mark: i16) -> Frame {
        vec![mark; 960]
    }

    fn talk(bus: &mut PatchBus, member: &str, mark: i16) -> Vec<(String, i16)> {
        bus.on_audio(&m(member), frame(mark));
        sent(bus)
    }

    #[test]
    fn a_patched_talkgroup_hears_the_other_and_nothing_goes_back_to_its_source() {
        let (mut bus, t0) = bus();
        bus.upsert(patch("joint", 1, &["tg-1", "tg-2", "east"]), t0)
            .expect("accepted");
        bus.on_carrier(&m("tg-1"), true, t0);
        assert_eq!(
            talk(&mut bus, "tg-1", 7),
            vec![("tg-2".into(), 7), ("east".into(), 7)]
        );
        assert_eq!(bus.counters().transmitted, 2);
    }

    #[test]
    fn two_members_keying_at_the_same_instant_one_holds_the_floor_and_the_other_waits() {
        let (mut bus, t0) = bus();
        bus.upsert(patch("joint", 1, &["tg-1", "tg-2", "east"]), t0)
            .expect("accepted");
        bus.on_carrier(&m("tg-1"), true, t0);
        bus.on_carrier(&m("tg-2"), true, t0);
        bus.drain();

        // tg-1 keyed first in the node's order and holds the floor. tg-2 is receiving,
        // so it is sent nothing, and what it hears goes nowhere.
        assert_eq!(talk(&mut bus, "tg-1", 1), vec![("east".into(), 1)]);
        assert_eq!(talk(&mut bus, "tg-2", 2), vec![]);
        assert_eq!(bus.counters().held_off, 1);

        // tg-1 unkeys; tg-2 still talking gets the floor when the hang time ends.
        bus.on_carrier(&m("tg-1"), false, t0 + 2000 * MS);
        assert_eq!(talk(&mut bus, "tg-2", 3), vec![]);
        bus.poll(t0 + 2000 * MS + HANG);
        let granted: Vec<_> = bus
            .drain()
            .filter_map(|o| match o {
                BusOutput::Floor {
                    event: FloorEvent::Granted { member, .. },
                    ..
                } => Some(member),
                _ => None,
            })
            .collect();
        assert_eq!(granted, vec![m("tg-2")]);
        assert_eq!(
            talk(&mut bus, "tg-2", 4),
            vec![("tg-1".into(), 4), ("east".into(), 4)]
        );
    }

    #[test]
    fn the_dispatcher_preempts_a_talker_and_reaches_everyone_else() {
        let (mut bus, t0) = bus();
        bus.upsert(patch("joint", 1, &["tg-1", "tg-2", "dispatch"]), t0)
            .expect("accepted");
        bus.on_carrier(&m("tg-1"), true, t0);
        assert_eq!(
            talk(&mut bus, "tg-1", 1),
            vec![("tg-2".into(), 1), ("dispatch".into(), 1)]
        );
        bus.on_carrier(&m("dispatch"), true, t0 + 500 * MS);
        assert_eq!(talk(&mut bus, "dispatch", 2), vec![("tg-2".into(), 2)]);
        assert_eq!(talk(&mut bus, "tg-1", 3), vec![]);
    }

    #[test]
    fn a_member_in_two_patches_is_fed_by_one_patch_at_a_time() {
        let (mut bus, t0) = bus();
        bus.upsert(patch("north", 1, &["tg-1", "street-2"]), t0)
            .expect("accepted");
        bus.upsert(patch("south", 2, &["tg-2", "street-2"]), t0)
            .expect("accepted");
        bus.on_carrier(&m("tg-1"), true, t0);
        bus.on_carrier(&m("tg-2"), true, t0 + 10 * MS);
        bus.drain();

        assert_eq!(talk(&mut bus, "tg-1", 1), vec![("street-2".into(), 1)]);
        assert_eq!(talk(&mut bus, "tg-2", 2), vec![]);
        assert_eq!(bus.counters().target_busy, 1);

        // North ends its over and its hang time: the link is free for south.
        bus.on_carrier(&m("tg-1"), false, t0 + 100 * MS);
        assert_eq!(talk(&mut bus, "tg-2", 3), vec![]);
        bus.poll(t0 + 100 * MS + HANG);
        assert_eq!(talk(&mut bus, "tg-2", 4), vec![("street-2".into(), 4)]);
    }

    #[test]
    fn patches_that_would_loop_are_refused() {
        let (mut bus, t0) = bus();
        bus.upsert(patch("a", 1, &["tg-1", "tg-2"]), t0)
            .expect("accepted");
        bus.upsert(patch("b", 2, &["tg-2", "tg-3"]), t0)
            .expect("accepted");
        assert_eq!(
            bus.upsert(patch("c", 3, &["tg-3", "tg-1"]), t0),
            Err(PatchError::Loop {
                patch: "c".into(),
                member: m("tg-1")
            })
        );
        assert_eq!(
            bus.upsert(patch("d", 4, &["tg-1", "tg-2", "east"]), t0),
            Err(PatchError::Loop {
                patch: "d".into(),
                member: m("tg-2")
            })
        );
        // Changing a patch is checked without its old self: b may take east.
        bus.upsert(patch("b", 2, &["tg-2", "tg-3", "east"]), t0)
            .expect("accepted");
        assert!(bus.patch("c").is_none());
    }

    #[test]
    fn malformed_patches_are_refused_with_the_reason() {
        let (mut bus, t0) = bus();
        bus.upsert(patch("a", 1, &["tg-1", "tg-2"]), t0)
            .expect("accepted");
        let refused = |bus: &mut PatchBus, spec| bus.upsert(spec, t0).expect_err("refused");
        assert_eq!(
            refused(&mut bus, patch("b", 2, &["tg-3", "tg-9"])),
            PatchError::UnknownMember {
                patch: "b".into(),
                member: m("tg-9")
            }
        );
        assert_eq!(
            refused(&mut bus, patch("b", 2, &["tg-3"])),
            PatchError::TooFewMembers { patch: "b".into() }
        );
        assert_eq!(
            refused(&mut bus, patch("b", 2, &["tg-3", "tg-3"])),
            PatchError::DuplicateMember {
                patch: "b".into(),
                member: m("tg-3")
            }
        );
        assert_eq!(
            refused(&mut bus, patch("b", 1, &["tg-3", "east"])),
            PatchError::NumberTaken {
                patch: "b".into(),
                number: 1,
                other: "a".into()
            }
        );
        assert_eq!(
            refused(&mut bus, patch("b c", 2, &["tg-3", "east"])),
            PatchError::BadName("b c".into())
        );
        assert_eq!(bus.free_number(), 2);
    }

    #[test]
    fn simulselect_reaches_every_member_and_their_answers_reach_only_the_console() {
        let (mut bus, t0) = bus();
        let mut spec = patch("all-call", 9, &["dispatch", "tg-1", "tg-2", "east"]);
        spec.mode = PatchMode::Simulselect {
            console: m("dispatch"),
        };
        bus.upsert(spec, t0).expect("accepted");

        bus.on_carrier(&m("dispatch"), true, t0);
        assert_eq!(
            talk(&mut bus, "dispatch", 1),
            vec![("tg-1".into(), 1), ("tg-2".into(), 1), ("east".into(), 1)]
        );
        bus.on_carrier(&m("dispatch"), false, t0 + 1000 * MS);
        bus.poll(t0 + 1000 * MS + HANG);

        bus.on_carrier(&m("tg-1"), true, t0 + 3000 * MS);
        assert_eq!(talk(&mut bus, "tg-1", 2), vec![("dispatch".into(), 2)]);
    }

    #[test]
    fn a_stuck_carrier_is_locked_out_of_every_patch_until_it_drops() {
        let (mut bus, t0) = bus();
        bus.upsert(patch("a", 1, &["tg-1", "tg-2"]), t0)
            .expect("accepted");
        bus.upsert(patch("b", 2, &["tg-1", "tg-3"]), t0)
            .expect("accepted");
        bus.on_carrier(&m("tg-1"), true, t0);
        assert_eq!(bus.next_deadline(), Some(t0 + Duration::from_secs(30)));

        bus.poll(t0 + Duration::from_secs(30));
        let locked: Vec<_> = bus
            .drain()
            .filter(|o| matches!(o, BusOutput::LockedOut { .. }))
            .collect();
        assert_eq!(locked.len(), 1, "locked out once, not per patch");
        assert!(bus.is_locked_out(&m("tg-1")));
        assert_eq!(talk(&mut bus, "tg-1", 1), vec![]);
        assert_eq!(bus.counters().locked_out, 1);

        // Meanwhile tg-2 can talk to tg-1's patch, though not to tg-1, still receiving.
        bus.on_carrier(&m("tg-2"), true, t0 + Duration::from_secs(31));
        assert_eq!(talk(&mut bus, "tg-2", 2), vec![]);
        bus.on_carrier(&m("tg-2"), false, t0 + Duration::from_secs(32));

        bus.on_carrier(&m("tg-1"), false, t0 + Duration::from_secs(40));
        assert!(
            bus.drain()
                .any(|o| o == BusOutput::LockoutCleared { member: m("tg-1") })
        );
        bus.poll(t0 + Duration::from_secs(40));
        bus.on_carrier(&m("tg-1"), true, t0 + Duration::from_secs(41));
        assert_eq!(
            talk(&mut bus, "tg-1", 3),
            vec![("tg-2".into(), 3), ("tg-3".into(), 3)]
        );
    }

    #[test]
    fn changing_a_patch_keeps_audio_flowing_to_members_that_stay() {
        let (mut bus, t0) = bus();
        bus.upsert(patch("joint", 1, &["tg-1", "tg-2", "east"]), t0)
            .expect("accepted");
        bus.on_carrier(&m("tg-1"), true, t0);
        assert_eq!(talk(&mut bus, "tg-1", 1).len(), 2);

        bus.upsert(patch("joint", 1, &["tg-1", "tg-2", "tg-3"]), t0 + 100 * MS)
            .expect("accepted");
        assert_eq!(
            talk(&mut bus, "tg-1", 2),
            vec![("tg-2".into(), 2), ("tg-3".into(), 2)]
        );
    }

    #[test]
    fn a_patch_made_while_a_member_talks_carries_it_at_once() {
        let (mut bus, t0) = bus();
        bus.on_carrier(&m("tg-1"), true, t0);
        assert_eq!(talk(&mut bus, "tg-1", 1), vec![]);
        bus.upsert(patch("late", 1, &["tg-1", "tg-2"]), t0 + 500 * MS)
            .expect("accepted");
        assert_eq!(talk(&mut bus, "tg-1", 2), vec![("tg-2".into(), 2)]);
    }

    #[test]
    fn a_transmission_ignored_after_a_command_stays_busy_until_its_carrier_drops() {
        let (mut bus, t0) = bus();
        bus.upsert(patch("joint", 1, &["tg-1", "tg-2"]), t0)
            .expect("accepted");
        bus.on_carrier(&m("tg-1"), true, t0);
        bus.ignore_until_drop(&m("tg-1"), t0 + 100 * MS);
        assert_eq!(talk(&mut bus, "tg-1", 1), vec![], "not heard");
        // tg-2 talks meanwhile: tg-1 is still receiving, so it is sent nothing.
        bus.poll(t0 + 100 * MS + HANG);
        bus.on_carrier(&m("tg-2"), true, t0 + 2000 * MS);
        assert_eq!(talk(&mut bus, "tg-2", 2), vec![]);
        bus.on_carrier(&m("tg-2"), false, t0 + 2100 * MS);
        bus.poll(t0 + 2100 * MS + HANG);
        // Its next over is heard.
        bus.on_carrier(&m("tg-1"), false, t0 + 4000 * MS);
        bus.on_carrier(&m("tg-1"), true, t0 + 5000 * MS);
        assert_eq!(talk(&mut bus, "tg-1", 3), vec![("tg-2".into(), 3)]);
    }

    #[test]
    fn removing_a_patch_stops_its_audio_and_permanent_patches_stay() {
        let (mut bus, t0) = bus();
        let mut base = patch("base", 1, &["tg-1", "tg-2"]);
        base.permanent = true;
        bus.upsert(base, t0).expect("accepted");
        bus.upsert(patch("extra", 2, &["tg-1", "tg-3"]), t0)
            .expect("accepted");
        bus.on_carrier(&m("tg-1"), true, t0);
        assert_eq!(talk(&mut bus, "tg-1", 1).len(), 2);

        bus.remove("extra", false, t0 + 10 * MS).expect("accepted");
        assert_eq!(talk(&mut bus, "tg-1", 2), vec![("tg-2".into(), 2)]);
        assert_eq!(
            bus.remove("base", false, t0),
            Err(PatchError::Permanent("base".into()))
        );
        assert_eq!(
            bus.remove("nope", false, t0),
            Err(PatchError::UnknownPatch("nope".into()))
        );
    }
}
