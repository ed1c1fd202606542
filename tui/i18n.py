"""The operator UI's words in Chinese (the default) and English (`terminal.language`)."""

from __future__ import annotations

from collections.abc import Mapping

LANGUAGES = ("zh", "en")

# key: (Chinese, English). Placeholders use str.format names.
_TEXT: dict[str, tuple[str, str]] = {
    # frame
    "app.title": ("Tally 称重与包装", "Tally weighbridge and packing"),
    "pane.weighbridge": ("地磅", "Weighbridge"),
    "pane.loading": ("装车", "Loading"),
    "pane.yard": ("厂区", "Yard"),
    "pane.today": ("今日", "Today"),
    "pane.health": ("状态", "Health"),
    "link.connected": ("已连接", "connected"),
    "link.lost": ("未连接", "no daemon"),
    "link.banner": (
        "Tally 守护进程未运行（{path}）；每 {every} 秒重试连接。",
        "The Tally daemon is not running ({path}); retrying every {every} s.",
    ),
    "link.connecting": ("正在连接 {path} …", "Connecting to {path} …"),
    "keys.global": (
        "F1-F5/1-5 切换  w 窗口  o 上岗  u 离岗  ^q 退出",
        "F1-F5/1-5 switch  w window  o/u sign in/out  ^q quit",
    ),
    "window.title": (
        "窗口服务：办结一位，或登记新来的",
        "Window: serve someone, or register a new arrival",
    ),
    "window.new": ("＋ 新来一位…", "+ someone new…"),
    "window.waiting": (
        "{ticket}  {window}  {service}  {since}",
        "{ticket}  {window}  {service}  {since}",
    ),
    "form.window_arrive": ("窗口登记", "Window arrival"),
    "form.window": ("窗口", "window"),
    "form.service": ("服务", "service"),
    "service.plan_order": ("开计划单", "plan order"),
    "service.payment": ("收款", "payment"),
    "service.transport_letter": ("提货单转地磅", "transport letter"),
    "service.no_letter": ("无单联系业务员", "no letter"),
    "form.exit_seals": ("{plate} 出厂：核对铅封", "{plate} leaves: confirm the seals"),
    "form.seals_seen": ("门岗看到的铅封号", "seal numbers the gate sees"),
    "kpi.window": ("窗口：{service}", "window: {service}"),
    "loading.checks": ("抽检待办", "spot checks due"),
    "col.check": ("检查项目", "check"),
    "col.due": ("应检时间", "due"),
    "check.bag_weight": ("袋重抽检", "bag weight"),
    "check.print_code": ("喷码检查", "print code"),
    "check.overdue": ("已超时", "overdue"),
    "check.due": ("待检", "due"),
    "check.after_start": ("开机后", "after start"),
    "check.calibrated": ("开机校正后", "after calibration"),
    "check.cold_start": ("停机30分钟以上开机后", "after a cold start"),
    "form.by": ("检查部门", "checked by"),
    "by.crew": ("包装工段", "packing crew"),
    "by.qc": ("质控处", "quality office"),
    "form.sign_in": ("上岗登记", "Sign in"),
    "form.badge": ("姓名或工号", "name or badge number"),
    "form.post": ("岗位", "post"),
    "operator.on_duty": ("当班", "on duty"),
    "check.shift": ("本班", "this shift"),
    "check.interval": ("定时", "every interval"),
    "check.from_scale": ("袋秤 {scale}", "scale {scale}"),
    "check.collecting": ("称量中", "weighing"),
    "form.check_bags": ("袋重抽检 {packer}", "Bag-weight check {packer}"),
    "form.bag_weights": ("袋重(千克，逗号分隔)", "bag weights in kg, comma separated"),
    "form.check_print": ("喷码检查 {packer}", "Print-code check {packer}"),
    "form.result": ("结果", "result"),
    "form.note": ("备注", "note"),
    "result.pass": ("合格", "pass"),
    "result.fail": ("不合格", "fail"),
    "cmd.ok": ("✓ {what}", "✓ {what}"),
    "cmd.refused": ("✗ {sentence}", "✗ {sentence}"),
    "cmd.no_visit": ("请先在列表中选择一辆车。", "Select a truck in the list first."),
    "cmd.no_packer": ("请先选择一台包装机。", "Select a packer first."),
    # warnings of an accepted command (agent/domain/visit_commands.py, docs/replication.md)
    "warn.title": ("提醒：已记录", "Recorded, but"),
    "warn.pending_stage": (
        "{plate} 订单 {order} 的到厂登记尚未传到本机；已按车牌和订单记录，到厂登记传到后自动归入该车次",
        "no arrival of {plate} for order {order} has reached this terminal; recorded by plate"
        " and order, the stage joins the visit when its arrival does",
    ),
    "warn.no_gate_in": (
        "{plate}（车次 {visit}）的进厂放行尚未传到本机；已照常记录",
        "no gate-in of {plate} (visit {visit}) has reached this terminal yet; recorded all the"
        " same",
    ),
    "warn.lag": ("（{lag}）", " ({lag})"),
    "lag.sources": ("数据延迟：{items}", "lag: {items}"),
    "lag.sep": ("；", "; "),
    "lag.none": ("各数据源均已同步", "every source up to date"),
    "lag.no_contact": ("{source} {state}，尚未联系上", "{source} {state}, no contact yet"),
    "lag.unreachable": (
        "{source} 连不上，最近联系在 {s} 秒前",
        "{source} unreachable, last contact {s} s ago",
    ),
    "lag.behind": ("{source} 落后 {s} 秒、{n} 条事件", "{source} {s} s and {n} events behind"),
    "lag.state.starting": ("启动中", "starting"),
    "lag.state.catching up": ("追赶中", "catching up"),
    "lag.state.unreachable": ("连不上", "unreachable"),
    "cmd.no_daemon": (
        "守护进程未运行，命令未发送。",
        "The daemon is not running; nothing was sent.",
    ),
    "none": ("—", "—"),
    # weighbridge
    "scale.none": ("未配置地磅", "no scale"),
    "scale.online": ("在线", "online"),
    "scale.offline": ("离线", "offline"),
    "scale.stable": ("稳定", "stable"),
    "scale.moving": ("动态", "moving"),
    "scale.state.idle": ("空秤", "idle"),
    "scale.state.armed": ("上秤", "armed"),
    "scale.state.settling": ("稳定中", "settling"),
    "scale.state.captured": ("已采集", "captured"),
    "scale.last": ("最近称重", "last weighing"),
    "scale.unassigned": ("未分配称重", "unassigned weighings"),
    "deck.title": ("秤上/下一辆", "on the deck / next"),
    "deck.empty": ("地磅排队为空", "nobody queued at the scale"),
    "wb.queue": ("地磅排队（目标 {target} 分钟）", "scale queue (target {target} min)"),
    "wb.keys": (
        "a 登记到达  t 皮重  g 毛重  q 排队  p 打印磅单  r 补打",
        "a arrival  t tare  g gross  q queue  p print ticket  r reprint",
    ),
    "ticket.print_pick": ("打印磅单：选择车辆", "Print the weigh ticket of"),
    "ticket.reprint_pick": ("补打磅单（副本）：选择车辆", "Reprint (副本) the weigh ticket of"),
    "ticket.none": ("没有已称毛重的车辆", "no truck weighed gross"),
    # columns
    "col.pos": ("#", "#"),
    "col.plate": ("车牌", "plate"),
    "col.order": ("订单", "order"),
    "col.product": ("产品", "product"),
    "col.load": ("方式", "load"),
    "col.stage": ("阶段", "stage"),
    "col.wait": ("等待/目标", "wait/target"),
    "col.elapsed": ("用时/目标", "time/target"),
    "col.planned": ("计划kg", "planned kg"),
    "col.tare": ("皮重", "tare"),
    "col.net": ("净重", "net"),
    "col.flags": ("异常", "checks"),
    "col.packer": ("包装机", "packer"),
    "col.state": ("状态", "state"),
    "col.bags_h": ("袋/时", "bags/h"),
    "col.t_h": ("吨/时", "t/h"),
    "col.return": ("退袋率", "returned"),
    "col.broken": ("破袋率", "broken"),
    "col.reason": ("停机原因", "stop reason"),
    "col.repair": ("预计修复", "repair"),
    "col.point": ("装车点", "point"),
    "col.bags": ("袋数/计划", "bags/planned"),
    "col.kpi": ("指标", "measure"),
    "col.value": ("实际", "actual"),
    "col.target": ("标准", "standard"),
    "col.met": ("达标", "met"),
    "col.device": ("设备", "device"),
    "col.kind": ("类型", "kind"),
    "col.since": ("自", "since"),
    "col.why": ("原因", "reason"),
    "col.item": ("项目", "item"),
    "col.alert": ("告警", "alert"),
    "col.detail": ("说明", "detail"),
    "col.queue_wait": ("已等", "waited"),
    "col.expected": ("预计等待", "expected wait"),
    # loads, stages and checks
    "load.bagged": ("袋装", "bagged"),
    "load.bulk": ("散装", "bulk"),
    "stage.arrived": ("到达", "arrived"),
    "stage.gate_in": ("已进厂", "gated in"),
    "stage.gated_in": ("已进厂", "gated in"),
    "stage.scale_queue": ("排队过磅", "scale queue"),
    "stage.queued_at_scale": ("排队过磅", "scale queue"),
    "stage.queued": ("排队过磅", "scale queue"),
    "stage.tared": ("已称皮重", "tared"),
    "stage.tare": ("已称皮重", "tared"),
    "stage.loading": ("装车中", "loading"),
    "stage.loaded": ("已装车", "loaded"),
    "stage.gross": ("已称毛重", "weighed"),
    "stage.weighed": ("已称毛重", "weighed"),
    "stage.sealed": ("已施封", "sealed"),
    "stage.exited": ("已出厂", "exited"),
    "stage.cancelled": ("已取消", "cancelled"),
    "check.tare_fluctuation": ("皮重波动", "tare fluctuation"),
    "check.underloaded": ("欠载", "underloaded"),
    "check.bagged_overweight": ("袋装超重", "bagged overweight"),
    "check.exit_no_gross": ("无毛重出厂", "left without a gross"),
    "check.exit_unsealed": ("散装未施封出厂", "bulk left unsealed"),
    "check.exit_net_off_order": ("净重超出订单允差", "net off the order"),
    "check.exit_product_mismatch": ("品种与订单不符", "product not as ordered"),
    "check.exit_broken_bags": ("破包未更换出厂", "broken bags not replaced"),
    "flags.title": ("⚠ 异常", "⚠ checks"),
    # loading
    "packer.running": ("运行", "running"),
    "packer.stopped": ("停机", "stopped"),
    "packer.offline": ("离线", "offline"),
    "packer.none": ("未配置包装机", "no packer"),
    "loading.points": ("装车点", "loading points"),
    "loading.keys": (
        "r 停机原因  b 袋重抽检  p 喷码检查  k 开机校正  d 破包",
        "r stop reason  b bag check  p print check  k calibrated  d broken bags",
    ),
    "repair.min": ("{n} 分钟", "{n} min"),
    # yard
    "yard.title": (
        "厂内车辆 {n} 辆，门外排队 {q} 辆",
        "{n} trucks in the plant, {q} waiting outside",
    ),
    "yard.keys": (
        "a 到达 i 进厂 q 排队 l 开始装车 f 装完 d 破包 s 施封 x 出厂 X 有因出厂 c 取消",
        "a arrive i gate-in q queue l load f finish d broken s seal x exit X exit+reason c cancel",
    ),
    "wait.left": ("剩{n}", "{n} left"),
    "wait.over": ("超{n}", "{n} over"),
    "form.exit_checked": ("{plate} 出厂：门岗核对", "{plate} leaves: the gate's checks"),
    "form.product_seen": ("门岗看到的品种（可空）", "product the gate sees (may be empty)"),
    "form.exit_reason": (
        "放行原因（出厂检查不通过时必填）",
        "reason to let it out (needed when an exit check fails)",
    ),
    "form.seals_seen_opt": (
        "门岗看到的铅封号（可空）",
        "seal numbers the gate sees (may be empty)",
    ),
    "form.broken_bags": ("{plate} 破包", "{plate}: broken bags"),
    "form.broken_found": ("发现破包数", "broken bags found"),
    "form.broken_replaced": ("已更换破包数", "broken bags replaced"),
    "cmd.no_loading": ("{packer} 没有正在装车的车辆", "no truck is loading at {packer}"),
    # today
    "today.title": ("今日服务指标 {day}", "today's service measures {day}"),
    "today.none": ("尚无今日指标", "no KPI report yet"),
    "kpi.weigh_wait": ("过磅等待", "weighbridge wait"),
    "kpi.bag_load_wait": ("袋装等待装车", "bagged loading wait"),
    "kpi.bulk_turnaround": ("散装周转", "bulk turnaround"),
    "kpi.seal_lag": ("散装施封", "bulk seal lag"),
    "kpi.return_rate": ("退袋率", "returned bags"),
    "kpi.broken_rate": ("破袋率", "broken bags"),
    "kpi.packer_rate": ("包装机产量", "packer rate"),
    "kpi.daily_completion": ("日计划完成", "daily completion"),
    "kpi.flags": ("异常 {text}", "checks {text}"),
    "today.keys": ("p 录入日计划", "p enter the day's plan"),
    "today.plan": (
        "日计划 {planned} 吨{products}，已装 {completed} 吨（{share}）",
        "plan {planned} t{products}, loaded {completed} t ({share})",
    ),
    "today.plan_product": (
        "{product} {completed}/{planned} 吨",
        "{product} {completed}/{planned} t",
    ),
    "today.no_plan": (
        "今日未录入日计划：暂以袋装来车计划量 {planned} 吨代替（按 p 录入）",
        "no plan entered for the day: the bagged arrivals' {planned} t stand in (p enters it)",
    ),
    "form.plan": ("录入日计划（袋装发运，吨）", "The day's bagged dispatch plan (tonnes)"),
    "form.day": ("日期 YYYY-MM-DD", "day YYYY-MM-DD"),
    "form.tonnes": ("计划吨数", "planned tonnes"),
    "form.plan_product": ("产品（留空为全天合计）", "product (empty: the whole day)"),
    "met.yes": ("✓", "✓"),
    "met.no": ("✗", "✗"),
    # health
    "health.devices": ("设备", "devices"),
    "health.sync": ("同步", "sync"),
    "health.agent": ("本机", "agent"),
    "health.alerts": ("告警", "alerts"),
    "health.no_alerts": ("无告警", "no alerts"),
    # the plant status line (every pane and the board)
    "plant.label": ("全厂", "plant"),
    "plant.here": ("本机", "here"),
    "plant.clear": ("正常", "all clear"),
    "plant.stopped": ("■ {where} {packer} 停机", "■ {where} {packer} stopped"),
    "plant.stopped_repair": (
        "■ {where} {packer} 停机 预计 {n} 分钟修复",
        "■ {where} {packer} stopped, repair {n} min",
    ),
    "plant.queue_long": ("▲ 门外排队过长，请通知包装", "▲ long queue at the gate, tell packing"),
    "plant.offline": ("○ {where} {device} 离线", "○ {where} {device} offline"),
    "plant.sync": ("⇅ {where} 同步异常", "⇅ {where} sync trouble"),
    "plant.unreachable": ("⇅ {where} 连不上", "⇅ {where} unreachable"),
    "sync.state": ("同步状态", "sync state"),
    "replica": ("厂内数据源", "plant source"),
    "replica.lag": ("延迟", "lag"),
    "replica.behind": ("条未到", "events behind"),
    "replica.contact": ("最近联系", "last contact"),
    "sync.backlog": ("待发送", "backlog"),
    "sync.oldest": ("最早未发 (秒)", "oldest unsent (s)"),
    "sync.acked": ("已确认至", "acked through"),
    "sync.last_ack": ("最近确认", "last ack"),
    "sync.error": ("最近错误", "last error"),
    "sync.dead": ("死信", "dead letters"),
    "sync.disabled": ("未配置同步", "sync not configured"),
    "health.version": ("版本", "version"),
    "health.uptime": ("运行时间", "uptime"),
    "health.disk": ("磁盘剩余 MB", "disk free MB"),
    "health.disk_full": ("磁盘已满", "disk full"),
    "health.clock": ("时钟偏差 ms", "clock offset ms"),
    "health.last_seq": ("最新事件号", "last seq"),
    "health.last_weighing": ("最近称重", "last weighing"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    "online": ("在线", "online"),
    "offline": ("离线", "offline"),
    # forms
    "form.ok": ("确定", "OK"),
    "form.cancel": ("取消", "Cancel"),
    "form.arrive": ("登记到达", "Register an arrival"),
    "form.plate": ("车牌", "plate"),
    "form.order": ("订单号", "order"),
    "form.product": ("产品", "product"),
    "form.load": ("装载方式", "load"),
    "form.planned_kg": ("计划重量 kg", "planned kg"),
    "form.point": ("装车点", "loading point"),
    "form.bags": ("袋数（散装留空）", "bags (empty for bulk)"),
    "form.seals": ("封号（逗号分隔）", "seal numbers (comma separated)"),
    "form.reason": ("原因", "reason"),
    "form.repair": ("预计修复分钟", "expected repair minutes"),
    "form.packer_reason": ("{packer} 停机原因", "{packer}: stop reason"),
    "form.loading_start": ("{plate} 开始装车", "{plate}: start loading"),
    "form.loading_finish": ("{plate} 装车完成", "{plate}: loading finished"),
    "form.seal": ("{plate} 施封", "{plate}: seal"),
    "form.cancel_visit": ("{plate} 取消", "{plate}: cancel the visit"),
    "form.queue_pick": ("选择排队过磅的车辆", "Pick the truck that joins the scale queue"),
    "form.nothing_to_pick": ("没有可排队的车辆", "no truck to queue"),
    "form.required": ("请填写：{field}", "Please fill in: {field}"),
    "form.number": ("{field} 必须是整数", "{field} must be a whole number"),
    # board
    "board.title": ("司机排队信息", "Queue for drivers"),
    "board.gate": ("门外排队", "waiting at the gate"),
    "board.scale": ("地磅排队", "at the weighbridge"),
    "board.stopped": ("停机", "stopped"),
    "board.all_running": ("包装机全部正常运行", "every packer is running"),
    "board.empty": ("无车排队", "nobody waiting"),
    "board.minutes": ("{n} 分", "{n} min"),
    "board.notices": ("异常处理", "What to do"),
    "notice.scale_offline": ("地磅离线", "scale offline"),
    "notice.printer": ("打印机", "printer"),
    "notice.printer_offline": ("磅单打印机离线", "ticket printer offline"),
    "notice.see_office": ("请到地磅房咨询", "see the weighbridge office"),
    "check.seal_mismatch": ("封签不符", "seal mismatch"),
}


class Words:
    """Looks up a key in one language; unknown keys show themselves so nothing crashes."""

    def __init__(self, language: str) -> None:
        self.language = language if language in LANGUAGES else "zh"
        self._col = LANGUAGES.index(self.language)

    def __call__(self, key: str, **values: object) -> str:
        """The text for `key` with `values` filled in."""
        pair = _TEXT.get(key)
        if pair is None:
            return key
        text = pair[self._col]
        return text.format(**values) if values else text

    def maybe(self, key: str, fallback: str) -> str:
        """The text for `key`, or `fallback` when there is none (e.g. a stage we do not know)."""
        pair = _TEXT.get(key)
        return pair[self._col] if pair else fallback


def warning(w: Words, entry: object, fallback: str) -> str:
    """An accepted command's warning in the operator's language, from its code and parameters
    (an item of the reply's `warning_codes`); `fallback` (the daemon's English sentence) when
    the code is not known here."""
    if not isinstance(entry, Mapping) or not isinstance(entry.get("params"), Mapping):
        return fallback
    key, params = f"warn.{entry.get('code')}", entry["params"]
    if key not in _TEXT or key == "warn.title":
        return fallback
    try:
        sentence = w(key, **{k: v for k, v in params.items() if k != "lag"})
    except (KeyError, IndexError, ValueError):
        return fallback  # a code whose parameters changed: the daemon's sentence says it
    lag = params.get("lag")
    if not isinstance(lag, list):
        return sentence
    return sentence + w("warn.lag", lag=lag_text(w, lag))


def lag_text(w: Words, sources: list[object]) -> str:
    """The sources a terminal's replica lags behind, in words (as `lag_words` in English)."""
    items = []
    for s in sources:
        if not isinstance(s, Mapping):
            continue
        name, state = s.get("source"), str(s.get("state"))
        shown = w.maybe(f"lag.state.{state}", state)
        if s.get("contact") is False:
            items.append(w("lag.no_contact", source=name, state=shown))
        elif state == "unreachable":
            items.append(w("lag.unreachable", source=name, s=f"{_num(s.get('silent_s')):.0f}"))
        else:
            lag_s, behind = _num(s.get("lag_s")), _num(s.get("events_behind"))
            items.append(w("lag.behind", source=name, s=f"{lag_s:g}", n=f"{behind:g}"))
    if not items:
        return w("lag.none")
    return w("lag.sources", items=w("lag.sep").join(items))


def _num(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def keys() -> Mapping[str, tuple[str, str]]:
    """Every key with its two texts (for the completeness test)."""
    return _TEXT
