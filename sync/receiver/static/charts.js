/* The evaluation pages' charts: ECharts (echarts.min.js, served beside this file) over the figures
   the page embeds as JSON in <script type="application/json" id="chart-data">. No inline code. */
(function () {
  "use strict";
  var node = document.getElementById("chart-data");
  if (!node || typeof echarts === "undefined") { return; }
  var spec = JSON.parse(node.textContent);
  var locale = spec.lang === "zh" ? "ZH" : "EN";
  var charts = [];

  function fmt(unit) {
    return function (v) {
      if (v === null || v === undefined) { return "—"; }
      return unit === "%" ? v.toFixed(1) + "%" : v.toFixed(2);
    };
  }

  spec.charts.forEach(function (c) {
    var el = document.getElementById(c.id);
    if (!el) { return; }
    var chart = echarts.init(el, null, { renderer: "svg", locale: locale });
    var series = c.series.map(function (s) {
      var out = { name: s.name, type: s.type, data: s.data, connectNulls: false };
      if (s.type === "line") { out.symbolSize = 6; }
      if (s.target && s.type === "scatter") {
        out.symbol = "rect";
        out.symbolSize = [36, 3];
        out.itemStyle = { color: "#b3261e" };
        out.z = 5;
      } else if (s.target) {
        out.lineStyle = { type: "dashed", color: "#b3261e" };
        out.itemStyle = { color: "#b3261e" };
        out.symbol = "none";
      }
      return out;
    });
    chart.setOption({
      animation: false,
      title: { text: c.title, textStyle: { fontSize: 13 }, left: 0 },
      tooltip: { trigger: "axis", valueFormatter: fmt(c.unit) },
      legend: { bottom: 0, type: "scroll" },
      grid: { left: 50, right: 16, top: 44, bottom: 52 },
      xAxis: { type: "category", data: c.x,
               axisLabel: c.wide ? { interval: 0 } : {} },
      yAxis: { type: "value", name: c.unit, axisLabel: { formatter: "{value}" } },
      series: series
    });
    charts.push(chart);
  });
  window.addEventListener("resize", function () {
    charts.forEach(function (c) { c.resize(); });
  });
  document.body.dataset.chartsReady = String(charts.length);
}());
