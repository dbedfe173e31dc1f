// The workflow canvas: Vue Flow with typed ports. Python owns the document; this component draws
// it, reports what the user did (connect, move, delete, select, drop, pan/zoom) with $emit, and
// takes updates through methods Python calls with run_method (never by re-sending props).
import { h } from "vue";
import { BaseEdge, Handle, Position, VueFlow, getBezierPath, useVueFlow } from "@vue-flow/core";
import { Background } from "@vue-flow/background";
import { Controls } from "@vue-flow/controls";
import { MiniMap } from "@vue-flow/minimap";

export function compatible(source, target) {
  return source === target || source === "any" || target === "any" || (source === "integer" && target === "number");
}

const LARGE_GRAPH = 200; // nodes

function portRow(nodeId, port, kind) {
  const handle = h(Handle, {
    id: port.name,
    type: kind === "input" ? "target" : "source",
    position: kind === "input" ? Position.Left : Position.Right,
    class: `nl-port nl-type-${port.type}`,
    "data-port": `${nodeId}.${port.name}`,
    "data-type": port.type,
    title: `${port.name}: ${port.type}${port.many ? " (many)" : ""}`,
  });
  return h("div", { class: `nl-row nl-${kind}` }, [handle, h("span", port.name)]);
}

const LoomNode = {
  props: ["id", "data", "selected"],
  render() {
    const d = this.data;
    const children = [
      h("div", { class: "nl-head" }, [h("b", d.title), h("span", { class: "nl-id" }, this.id)]),
      h("div", { class: "nl-ports" }, [
        h("div", { class: "nl-col" }, d.inputs.map((port) => portRow(this.id, port, "input"))),
        h("div", { class: "nl-col nl-right" }, d.outputs.map((port) => portRow(this.id, port, "output"))),
      ]),
    ];
    if (d.text) children.push(h("div", { class: "nl-text" }, d.text));
    if (d.error) children.push(h("div", { class: "nl-error" }, d.error));
    return h(
      "div",
      {
        class: ["nl-node", `nl-status-${d.status || "idle"}`, d.invalid ? "nl-invalid" : ""],
        "data-node-id": this.id,
        "data-status": d.status || "idle",
        title: d.reason || "",
      },
      children,
    );
  },
};

const LoomEdge = {
  props: ["id", "sourceX", "sourceY", "targetX", "targetY", "sourcePosition", "targetPosition", "data", "markerEnd", "style", "selected"],
  render() {
    const [path] = getBezierPath(this.$props);
    return h("g", { "data-edge": this.data.label }, [
      h(BaseEdge, { id: this.id, path, markerEnd: this.markerEnd, style: this.style, interactionWidth: 16 }),
    ]);
  },
};

export default {
  template: `
    <div class="nl-canvas" @dragover.prevent="onDragOver" @drop.prevent="onDrop"
         @wheel.capture="autoFit = false" @mousedown.capture="autoFit = false">
      <VueFlow :id="flowId" :node-types="nodeTypes" :edge-types="edgeTypes" :min-zoom="0.1" :max-zoom="2"
               :is-valid-connection="isValidConnection" :delete-key-code="['Delete', 'Backspace']"
               :only-render-visible-elements="large" :default-viewport="viewport || {x: 0, y: 0, zoom: 1}"
               multi-selection-key-code="Shift" :apply-default="false"
               @nodes-change="onNodesChange" @edges-change="onEdgesChange" @connect="onConnect"
               @connect-start="onConnectStart" @connect-end="onConnectEnd"
               @node-drag-stop="onDragStop" @pane-ready="onReady"
               @nodes-initialized="onNodesInitialized">
        <Background />
        <MiniMap pannable zoomable />
        <Controls />
      </VueFlow>
    </div>`,
  components: { VueFlow, Background, Controls, MiniMap },
  props: { flowId: String, graph: Object, viewport: Object },
  setup(props) {
    return { flow: useVueFlow(props.flowId) };
  },
  data() {
    // Large graphs draw only what is in view; small ones draw everything, so that a node added
    // off-screen is measured (an unmeasured node would never count as visible).
    const large = ((this.graph && this.graph.nodes) || []).length > LARGE_GRAPH;
    return { nodeTypes: { loom: LoomNode }, edgeTypes: { loom: LoomEdge }, refusal: null, connecting: false, fitPending: false, large, pending: new Set(), autoFit: false };
  },
  mounted() {
    this.load(JSON.parse(JSON.stringify(this.graph || { nodes: [], edges: [] })));
    // Until the user pans or zooms, a graph without a saved view is kept fitted to the canvas,
    // whose size settles only after the page's layout does.
    this.resizes = new ResizeObserver(() => {
      if (this.autoFit) this.fit();
    });
    this.resizes.observe(this.$el);
    // Pan and zoom by any means (wheel, drag, the controls, fit-view) end up in the view state.
    let timer = null;
    this.$watch(
      () => this.flow.viewport.value,
      () => {
        clearTimeout(timer);
        timer = setTimeout(() => this.$emit("viewport", this.flow.getViewport()), 250);
      },
      { deep: true },
    );
  },
  unmounted() {
    this.resizes.disconnect();
  },
  methods: {
    // -- from Python ----------------------------------------------------------------------------
    load(graph) {
      this.flow.setEdges([]);
      this.flow.setNodes(graph.nodes.map((node) => this.toFlowNode(node)));
      // Edges once the nodes are drawn: a replaced node's handles must be measured first.
      this.$nextTick(() => this.flow.setEdges(graph.edges.map((edge) => this.toFlowEdge(edge))));
      // Fit once the nodes are measured (a fit before that lands at the minimum zoom).
      if (!this.viewport) this.fitPending = this.autoFit = true;
    },
    fit() {
      this.flow.fitView({ padding: 0.15 });
    },
    setViewport(viewport) {
      this.flow.setViewport(viewport);
    },
    addNode(node) {
      this.flow.addNodes([this.toFlowNode(node)]);
    },
    updateNode(node) {
      this.flow.updateNode(node.id, { data: this.nodeData(node, this.flow.findNode(node.id)?.data) });
      // Ports may have come or gone: measure the handles again so that edges can reach them.
      this.$nextTick(() => this.flow.updateNodeInternals([node.id]));
    },
    removeNodes(ids) {
      for (const id of ids) this.pending.add(id);
      for (const edge of this.flow.getEdges.value) if (ids.includes(edge.source) || ids.includes(edge.target)) this.pending.add(edge.id);
      this.flow.removeNodes(ids);
    },
    addEdge(edge) {
      this.flow.addEdges([this.toFlowEdge(edge)]);
    },
    removeEdge(id) {
      this.pending.add(id);
      this.flow.removeEdges([id]);
    },
    moveNodes(positions) {
      for (const [id, pos] of Object.entries(positions)) this.flow.updateNode(id, { position: pos });
    },
    setStates(states) {
      // states: {node: {status, reason, text, error}}; unknown keys keep their value
      for (const [id, state] of Object.entries(states)) {
        const node = this.flow.findNode(id);
        if (node) this.flow.updateNodeData(id, state);
      }
    },
    appendText(id, text) {
      const node = this.flow.findNode(id);
      if (node) this.flow.updateNodeData(id, { text: (node.data.text || "") + text });
    },
    clearStates() {
      for (const node of this.flow.getNodes.value) {
        this.flow.updateNodeData(node.id, { status: "idle", reason: "", text: "", error: "", invalid: false });
      }
    },
    markInvalid(ids) {
      for (const node of this.flow.getNodes.value) this.flow.updateNodeData(node.id, { invalid: ids.includes(node.id) });
    },
    select(ids) {
      for (const node of this.flow.getNodes.value) node.selected = ids.includes(node.id);
    },
    // -- helpers --------------------------------------------------------------------------------
    nodeData(node, previous) {
      return {
        ...(previous || {}),
        title: node.title,
        inputs: node.inputs,
        outputs: node.outputs,
        status: (previous && previous.status) || "idle",
      };
    },
    toFlowNode(node) {
      return { id: node.id, type: "loom", position: { x: node.x || 0, y: node.y || 0 }, data: this.nodeData(node) };
    },
    toFlowEdge(edge) {
      const [source, sourceHandle] = edge.from.split(".");
      const [target, targetHandle] = edge.to.split(".");
      return { id: `${edge.from}->${edge.to}`, type: "loom", source, sourceHandle, target, targetHandle, data: { label: `${edge.from}->${edge.to}` } };
    },
    portOf(nodeId, handle, kind) {
      const node = this.flow.findNode(nodeId);
      if (!node) return null;
      return (kind === "input" ? node.data.inputs : node.data.outputs).find((port) => port.name === handle) || null;
    },
    isValidConnection(connection) {
      const source = this.portOf(connection.source, connection.sourceHandle, "output");
      const target = this.portOf(connection.target, connection.targetHandle, "input");
      if (!source || !target) return false;
      let refusal = null;
      if (connection.source === connection.target) refusal = "a node cannot feed itself";
      else if (!compatible(source.type, target.type)) refusal = `${source.type} cannot go into ${target.type} (${connection.target}.${target.name})`;
      else if (!target.many && this.flow.getEdges.value.some((e) => e.id !== connection.id && e.target === connection.target && e.targetHandle === connection.targetHandle)) {
        refusal = `${connection.target}.${target.name} already has an input`;
      }
      this.refusal = refusal;
      return refusal === null;
    },
    // -- to Python ------------------------------------------------------------------------------
    onConnectStart() {
      this.refusal = null;
      this.connecting = true;
    },
    onConnectEnd() {
      if (this.connecting && this.refusal) this.$emit("refused", { reason: this.refusal });
      this.connecting = false;
      this.refusal = null;
    },
    onConnect(connection) {
      this.refusal = null;
      this.$emit("connect", {
        from: `${connection.source}.${connection.sourceHandle}`,
        to: `${connection.target}.${connection.targetHandle}`,
      });
    },
    // With apply-default off, every change (ours included) arrives here first: additions and
    // removals Python asked for are applied, a removal by the user (Delete) goes to Python,
    // which removes the node from the document and then from the drawing.
    onNodesChange(changes) {
      const removed = this.split(changes);
      if (removed.asked.length) this.flow.applyNodeChanges(removed.asked);
      if (removed.ids.length) this.$emit("remove-nodes", { ids: removed.ids });
      if (changes.some((c) => c.type === "select")) this.$emit("selection", { ids: this.flow.getSelectedNodes.value.map((n) => n.id) });
    },
    onEdgesChange(changes) {
      const removed = this.split(changes);
      if (removed.asked.length) this.flow.applyEdgeChanges(removed.asked);
      // An edge of a node being deleted goes with the node (one step to undo), not on its own.
      const deleting = new Set(this.flow.getSelectedNodes.value.map((n) => n.id));
      const ids = removed.ids.filter((id) => {
        const edge = this.flow.findEdge(id);
        return !edge || !(deleting.has(edge.source) || deleting.has(edge.target));
      });
      if (ids.length) this.$emit("remove-edges", { ids });
    },
    split(changes) {
      // The changes to apply now, and the ids the user removed (for Python to decide on).
      const asked = [];
      const ids = [];
      for (const change of changes) {
        if (change.type === "remove" && !this.pending.has(change.id)) ids.push(change.id);
        else {
          this.pending.delete(change.id);
          asked.push(change);
        }
      }
      return { asked, ids };
    },
    onDragStop(event) {
      const moved = {};
      for (const node of event.nodes) moved[node.id] = { x: Math.round(node.position.x), y: Math.round(node.position.y) };
      this.$emit("move", { positions: moved });
    },
    onReady() {
      this.$emit("ready", {});
    },
    onNodesInitialized() {
      if (!this.fitPending) return;
      this.fitPending = false;
      this.fit();
    },
    onDragOver(event) {
      if (event.dataTransfer) event.dataTransfer.dropEffect = "copy";
    },
    onDrop(event) {
      const type = event.dataTransfer && event.dataTransfer.getData("application/x-nodeloom-type");
      if (!type) return;
      const position = this.flow.screenToFlowCoordinate({ x: event.clientX, y: event.clientY });
      this.$emit("palette-drop", { type, x: Math.round(position.x), y: Math.round(position.y) });
    },
  },
};
