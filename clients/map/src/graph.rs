//! The copy map as a node graph: sources and accounts as nodes in columns by how far down a
//! chain they copy (sources and top leaders on the left), links as curves from a leader's
//! right-hand port to a follower's left side, each with a chip naming its sizing.
//!
//! A link is drawn by dragging from a leader's port (`link from <name>`) onto a follower.
//! Clicking a chip selects its link, clicking a node selects the node; nodes can be moved and
//! "Arrange" puts them back. Every node, port and chip carries an accessible label, so the
//! graph is usable (and tested) by label.

use std::collections::{BTreeMap, BTreeSet};

use egui::{Color32, CornerRadius, FontId, Pos2, Rect, Sense, Shape, Stroke, StrokeKind, Vec2, WidgetInfo, pos2, vec2};

use crate::doc::{CopyMap, NodeKind};
use crate::validate::{Finding, Severity};

/// Node size on the canvas.
pub const NODE_SIZE: Vec2 = vec2(180.0, 42.0);
const COLUMN_STEP: f32 = 290.0;
const ROW_STEP: f32 = 54.0;
const MARGIN: f32 = 24.0;
const PORT_RADIUS: f32 = 7.0;

/// What is selected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Selection {
    /// Nothing.
    #[default]
    None,
    /// A node, by name.
    Node(String),
    /// A link, by index.
    Link(usize),
}

/// What the user did in the graph this frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GraphAction {
    /// Select something.
    Select(Selection),
    /// A link drawn from `leader` onto `follower`.
    Connect {
        /// Where the drag started.
        leader: String,
        /// Where it was dropped.
        follower: String,
    },
}

/// How the graph marks links.
#[derive(Clone, Debug, Default)]
pub struct Marks {
    /// Links (leader, follower) the running engine does not have yet.
    pub added: BTreeSet<(String, String)>,
}

/// The graph's own state: where nodes are, what is selected, a link being drawn.
#[derive(Clone, Debug, Default)]
pub struct GraphView {
    /// Nodes the user moved, canvas coordinates.
    moved: BTreeMap<String, Pos2>,
    /// The current selection.
    pub selection: Selection,
    drawing_from: Option<String>,
    /// Where the pointer last was while a link was being drawn (the drop lands there even if
    /// the pointer leaves the window as it is released).
    drawing_to: Option<Pos2>,
    /// The layout and each node's link counts, for the map generation they were made from
    /// (recomputed only when the map changes, not every frame).
    cached: Option<Cached>,
}

#[derive(Clone, Debug)]
struct Cached {
    generation: u64,
    layout: BTreeMap<String, Pos2>,
    counts: BTreeMap<String, (usize, usize)>,
}

impl GraphView {
    /// Forgets moved nodes: every node goes back to its column.
    pub fn arrange(&mut self) {
        self.moved.clear();
    }

    /// Draws the graph; what the user did, if anything. `generation` changes whenever `map`
    /// does (the layout is kept between frames of one generation).
    pub fn show(
        &mut self,
        ui: &mut egui::Ui,
        generation: u64,
        map: &CopyMap,
        findings: &[Finding],
        marks: &Marks,
    ) -> Option<GraphAction> {
        if self.cached.as_ref().is_none_or(|c| c.generation != generation) {
            let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
            for link in &map.links {
                counts.entry(link.follower.clone()).or_default().0 += 1;
                counts.entry(link.leader.clone()).or_default().1 += 1;
            }
            self.cached = Some(Cached { generation, layout: layout(map), counts });
        }
        let cached = self.cached.as_ref()?;
        // Where every node is this frame (a move lands next frame).
        let mut positions = cached.layout.clone();
        let moved: Vec<(String, Pos2)> =
            self.moved.iter().filter(|(name, _)| positions.contains_key(*name)).map(|(n, p)| (n.clone(), *p)).collect();
        positions.extend(moved);
        let position = |name: &str| positions.get(name).copied();
        let extent = map
            .nodes
            .iter()
            .filter_map(|n| position(&n.name))
            .fold(vec2(600.0, 300.0), |size, p| size.max(p.to_vec2() + NODE_SIZE + vec2(MARGIN * 2.0, MARGIN)));
        let (canvas, painter) = ui.allocate_painter(extent, Sense::click());
        let origin = canvas.rect.min.to_vec2();
        let visible = ui.clip_rect();
        let rect_of = |name: &str| position(name).map(|p| Rect::from_min_size(p + origin, NODE_SIZE));
        let mut action = None;
        if canvas.clicked() {
            action = Some(GraphAction::Select(Selection::None));
        }
        let visuals = ui.visuals().clone();
        let link_errors: BTreeSet<usize> =
            findings.iter().filter(|f| f.severity == Severity::Error).filter_map(|f| f.link).collect();
        let link_warnings: BTreeSet<usize> =
            findings.iter().filter(|f| f.severity == Severity::Warning).filter_map(|f| f.link).collect();

        // Links first, under the nodes.
        let mut chips = Vec::new();
        for (index, link) in map.links.iter().enumerate() {
            let (Some(from), Some(to)) = (rect_of(&link.leader), rect_of(&link.follower)) else { continue };
            // Off screen: neither drawn nor laid out (a 1,000-account map stays fluid).
            if !visible.intersects(from.union(to)) {
                continue;
            }
            let (start, end) = (from.right_center(), to.left_center());
            let selected = self.selection == Selection::Link(index);
            let colour = if link_errors.contains(&index) {
                Color32::from_rgb(230, 80, 70)
            } else if marks.added.contains(&(link.leader.clone(), link.follower.clone())) {
                Color32::from_rgb(90, 200, 110)
            } else if link.rules.paused {
                Color32::from_gray(120)
            } else {
                Color32::from_rgb(110, 160, 230)
            };
            let stroke = Stroke::new(if selected { 3.5 } else { 1.8 }, colour);
            let bend = ((end.x - start.x).abs() * 0.5).max(60.0);
            let curve = egui::epaint::CubicBezierShape::from_points_stroke(
                [start, start + vec2(bend, 0.0), end - vec2(bend, 0.0), end],
                false,
                Color32::TRANSPARENT,
                stroke,
            );
            let middle = curve.sample(0.5);
            painter.add(curve);
            painter.add(Shape::convex_polygon(
                vec![end, end + vec2(-9.0, -5.0), end + vec2(-9.0, 5.0)],
                colour,
                Stroke::NONE,
            ));
            let mut label = link.rules.sizing.label();
            if link.rules.reverse {
                label.push_str(" · reverse");
            }
            if !link.rules.symbol_map.is_empty() {
                label.push_str(" · map");
            }
            if link.rules.paused {
                label.push_str(" · paused");
            }
            if link_errors.contains(&index) {
                label.push_str(" · error");
            } else if link_warnings.contains(&index) {
                label.push_str(" · warning");
            }
            chips.push((index, middle, label, colour, selected));
        }
        for (index, middle, label, colour, selected) in chips {
            let galley = painter.layout_no_wrap(label, FontId::proportional(11.0), visuals.strong_text_color());
            let rect = Rect::from_center_size(middle, galley.size() + vec2(10.0, 4.0));
            let response = ui.interact(rect, ui.scope_id().with(("link chip", index)), Sense::click());
            let title = map.links[index].title();
            response.widget_info(|| WidgetInfo::labeled(egui::Role::Button, true, format!("link {title}")));
            let fill =
                if selected || response.hovered() { visuals.widgets.hovered.bg_fill } else { visuals.extreme_bg_color };
            painter.rect(rect, CornerRadius::same(4), fill, Stroke::new(1.0, colour), StrokeKind::Inside);
            painter.galley(rect.min + vec2(5.0, 2.0), galley, visuals.strong_text_color());
            if response.clicked() {
                action = Some(GraphAction::Select(Selection::Link(index)));
            }
        }

        // Nodes, their ports, and the drag that draws a link.
        let inbound = |name: &str| cached.counts.get(name).map_or(0, |c| c.0);
        let outbound = |name: &str| cached.counts.get(name).map_or(0, |c| c.1);
        let mut drop_target = None;
        if self.drawing_from.is_some() {
            self.drawing_to = ui.ctx().pointer_latest_pos().or(self.drawing_to);
        }
        let pointer = self.drawing_to;
        for node in &map.nodes {
            let Some(rect) = rect_of(&node.name) else { continue };
            if !visible.intersects(rect.expand(PORT_RADIUS * 2.0)) {
                continue;
            }
            let body = ui.interact(rect, ui.scope_id().with(("node", &node.name)), Sense::click_and_drag());
            let kind = if node.kind == NodeKind::Source { "source" } else { "account" };
            body.widget_info(|| WidgetInfo::labeled(egui::Role::Button, true, format!("{kind} {}", node.name)));
            if body.dragged() {
                let at = position(&node.name).unwrap_or_default();
                self.moved.insert(node.name.clone(), at + body.drag_delta());
            }
            if body.clicked() {
                action = Some(GraphAction::Select(Selection::Node(node.name.clone())));
            }
            let accepts = node.kind == NodeKind::Account
                && self.drawing_from.as_ref().is_some_and(|from| *from != node.name)
                && pointer.is_some_and(|p| rect.expand(4.0).contains(p));
            if accepts {
                drop_target = Some(node.name.clone());
            }
            let selected = self.selection == Selection::Node(node.name.clone());
            let fill = match node.kind {
                NodeKind::Source => Color32::from_rgb(70, 50, 100),
                NodeKind::Account => visuals.widgets.inactive.bg_fill,
            };
            let border = if accepts {
                Stroke::new(2.5, Color32::from_rgb(90, 200, 110))
            } else if selected {
                Stroke::new(2.5, visuals.selection.stroke.color)
            } else {
                Stroke::new(1.0, visuals.widgets.noninteractive.bg_stroke.color)
            };
            painter.rect(rect, CornerRadius::same(6), fill, border, StrokeKind::Inside);
            painter.text(
                rect.min + vec2(10.0, 5.0),
                egui::Align2::LEFT_TOP,
                &node.name,
                FontId::proportional(14.0),
                visuals.strong_text_color(),
            );
            let detail = match node.kind {
                NodeKind::Source => format!("source · {} out", outbound(&node.name)),
                NodeKind::Account => {
                    format!("{} · {} in · {} out", node.platform, inbound(&node.name), outbound(&node.name))
                }
            };
            painter.text(
                rect.min + vec2(10.0, 24.0),
                egui::Align2::LEFT_TOP,
                detail,
                FontId::proportional(11.0),
                visuals.weak_text_color(),
            );
            if node.kind == NodeKind::Account {
                painter.circle_filled(rect.left_center(), 4.0, visuals.weak_text_color());
            }
            // The output port: drag from it onto a follower to draw a link.
            let port = Rect::from_center_size(rect.right_center(), Vec2::splat(PORT_RADIUS * 2.0 + 6.0));
            let handle = ui.interact(port, ui.scope_id().with(("port", &node.name)), Sense::drag());
            handle.widget_info(|| WidgetInfo::labeled(egui::Role::Button, true, format!("link from {}", node.name)));
            let port_fill = if handle.hovered() || handle.dragged() {
                Color32::from_rgb(90, 200, 110)
            } else {
                Color32::from_rgb(110, 160, 230)
            };
            painter.circle(rect.right_center(), PORT_RADIUS, port_fill, Stroke::new(1.0, visuals.strong_text_color()));
            if handle.drag_started() {
                self.drawing_from = Some(node.name.clone());
            }
        }
        if let Some(from) = self.drawing_from.clone() {
            let released = ui.input(|i| i.pointer.any_released() || !i.pointer.any_down());
            if let (Some(start), Some(end)) = (rect_of(&from).map(|r| r.right_center()), pointer)
                && !released
            {
                painter.line_segment([start, end], Stroke::new(2.0, Color32::from_rgb(90, 200, 110)));
            }
            if released {
                self.drawing_from = None;
                self.drawing_to = None;
                if let Some(follower) = drop_target {
                    action = Some(GraphAction::Connect { leader: from, follower });
                }
            }
        }
        action
    }
}

/// Where each node goes: a column per chain depth (sources and accounts nobody copies on the
/// left), rows ordered so that followers sit near their leaders.
fn layout(map: &CopyMap) -> BTreeMap<String, Pos2> {
    let leaders_of = |name: &str| -> Vec<&str> {
        map.links
            .iter()
            .filter(|l| l.follower == name && map.node(&l.leader).is_some())
            .map(|l| l.leader.as_str())
            .collect()
    };
    // Depth: one more than the deepest leader; a cycle stops growing after as many rounds as
    // there are nodes.
    let mut depth: BTreeMap<&str, usize> = map.nodes.iter().map(|n| (n.name.as_str(), 0)).collect();
    for _ in 0..map.nodes.len() {
        let mut changed = false;
        for node in &map.nodes {
            let wanted =
                leaders_of(&node.name).iter().map(|l| depth.get(l).copied().unwrap_or(0) + 1).max().unwrap_or(0);
            let wanted = wanted.min(map.nodes.len());
            if depth.get(node.name.as_str()) != Some(&wanted) {
                depth.insert(node.name.as_str(), wanted);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let columns = depth.values().copied().max().unwrap_or(0) + 1;
    let mut rows: BTreeMap<&str, f32> = BTreeMap::new();
    let mut positions = BTreeMap::new();
    for column in 0..columns {
        let mut in_column: Vec<(usize, &str, f32)> = map
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| depth.get(n.name.as_str()) == Some(&column))
            .map(|(order, n)| {
                let leaders = leaders_of(&n.name);
                let leads = map.links.iter().any(|l| l.leader == n.name);
                // Column 0: sources, then leaders, then accounts on their own; further right,
                // the average row of the leaders.
                let key = if column == 0 {
                    match (n.kind, leads) {
                        (NodeKind::Source, _) => 0.0,
                        (NodeKind::Account, true) => 1.0,
                        (NodeKind::Account, false) => 2.0,
                    }
                } else {
                    leaders.iter().filter_map(|l| rows.get(l)).sum::<f32>() / leaders.len().max(1) as f32
                };
                (order, n.name.as_str(), key)
            })
            .collect();
        in_column.sort_by(|a, b| a.2.total_cmp(&b.2).then(a.0.cmp(&b.0)));
        for (row, (_, name, _)) in in_column.into_iter().enumerate() {
            rows.insert(name, row as f32);
            positions
                .insert(name.to_owned(), pos2(MARGIN + column as f32 * COLUMN_STEP, MARGIN + row as f32 * ROW_STEP));
        }
    }
    positions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::MapDoc;

    #[test]
    fn chains_go_right_and_followers_sit_by_their_leaders() {
        let doc = MapDoc::parse(include_str!("../../../config/demo.toml")).unwrap();
        let positions = layout(doc.map());
        assert_eq!(positions.len(), doc.map().nodes.len(), "every node placed");
        let column = |name: &str| (positions[name].x - MARGIN) / COLUMN_STEP;
        assert_eq!(column("algo"), 0.0);
        assert_eq!(column("alpha-fx"), 0.0);
        assert_eq!(column("fx-mirror"), 1.0);
        assert_eq!(column("fut-double"), 1.0);
        assert_eq!(column("fut-chain"), 2.0, "a follower's follower is one column further");
        // No two nodes on the same spot.
        let spots: BTreeSet<(u32, u32)> = positions.values().map(|p| (p.x.to_bits(), p.y.to_bits())).collect();
        assert_eq!(spots.len(), positions.len());
        // The algo source comes first in the left column.
        assert_eq!(positions["algo"].y, MARGIN);
    }

    #[test]
    fn a_cycle_still_gets_a_layout() {
        let text = "[[accounts]]\nname = \"a\"\nplatform = \"sim\"\n[[accounts]]\nname = \"b\"\nplatform = \"sim\"\n\
                    [[links]]\nleader = \"a\"\nfollower = \"b\"\n[[links]]\nleader = \"b\"\nfollower = \"a\"\n";
        let doc = MapDoc::parse(text).unwrap();
        let positions = layout(doc.map());
        assert_eq!(positions.len(), 2);
        assert_ne!(positions["a"], positions["b"]);
    }
}
