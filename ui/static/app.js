// Kiln UI: a light touch of script on server-rendered pages. Every page
// works without it except the form view of the segment builder.
(function () {
  'use strict';
  var csrf = document.body.dataset.csrf || '';

  function post(url, body) {
    return fetch(url, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) throw new Error(j.error || ('the server answered ' + r.status));
        return j;
      });
    });
  }

  function debounce(fn, ms) {
    var t;
    return function () { clearTimeout(t); var a = arguments; t = setTimeout(function () { fn.apply(null, a); }, ms); };
  }

  // Forms that destroy something ask first.
  document.querySelectorAll('form[data-confirm]').forEach(function (f) {
    f.addEventListener('submit', function (e) { if (!window.confirm(f.dataset.confirm)) e.preventDefault(); });
  });

  // Overview: live counters.
  var rateEl = document.getElementById('stat-rate');
  if (rateEl) {
    var refresh = function () {
      fetch('/ui/stats.json', { credentials: 'same-origin' }).then(function (r) { return r.json(); }).then(function (j) {
        if (j.rate) rateEl.textContent = j.rate;
        if (j.events) document.getElementById('stat-events').textContent = j.events;
        if (j.profiles) document.getElementById('stat-profiles').textContent = j.profiles;
      }).catch(function () {});
    };
    setTimeout(refresh, 5000);
    setInterval(refresh, 15000);
  }

  // Segment page: recompute progress.
  var job = document.getElementById('job');
  if (job && job.dataset.state === 'running') {
    var poll = setInterval(function () {
      fetch('/ui/jobs/' + job.dataset.job, { credentials: 'same-origin' }).then(function (r) { return r.json(); }).then(function (j) {
        var bar = job.querySelector('progress');
        bar.max = j.total || 1; bar.value = j.done;
        var txt = j.done.toLocaleString() + ' of ' + j.total.toLocaleString() + ' events';
        if (j.state !== 'running') {
          clearInterval(poll);
          job.querySelector('label').textContent = 'Recompute ' + j.state;
          txt += j.state === 'done' ? ' · ' + j.entered + ' entered, ' + j.exited + ' left' : ' · ' + (j.error || '');
          if (j.state === 'done') setTimeout(function () { window.location.reload(); }, 800);
        }
        job.querySelector('.job-text').textContent = txt;
      }).catch(function () { clearInterval(poll); });
    }, 500);
  }

  var builder = document.getElementById('builder');
  if (builder) initBuilder();

  // --- segment builder -----------------------------------------------------

  function initBuilder() {
    var text = document.getElementById('def-text');
    var formEl = document.getElementById('form-builder');
    var errorsEl = document.getElementById('def-errors');
    var staleEl = document.getElementById('form-stale');
    var previewEl = document.getElementById('preview');
    var saveForm = document.getElementById('save-form');
    var def = null;
    var pending = null; // the last format request, awaited before saving
    var uid = 0;

    function listOf(id) {
      return Array.prototype.map.call(document.querySelectorAll('#' + id + ' option'), function (o) { return o.value; });
    }
    var names = { segments: listOf('dl-segments'), traits: listOf('dl-traits'), events: listOf('dl-events') };

    // h builds an element: h('select', {id: 'x', on: {change: fn}}, kids...).
    function h(tag, attrs) {
      var e = document.createElement(tag);
      attrs = attrs || {};
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === undefined || v === null || v === false) return;
        if (k === 'on') Object.keys(v).forEach(function (ev) { e.addEventListener(ev, v[ev]); });
        else if (k === 'text') e.textContent = v;
        else if (k === 'value') e.value = v;
        else e.setAttribute(k, v === true ? '' : v);
      });
      for (var i = 2; i < arguments.length; i++) {
        var kid = arguments[i];
        if (kid === null || kid === undefined || kid === false) continue;
        if (Array.isArray(kid)) kid.forEach(function (k) { if (k) e.append(k); });
        else e.append(kid);
      }
      return e;
    }
    function field(label, input, cls) {
      var id = 'bf' + (++uid);
      input.id = id;
      return h('span', { 'class': 'field ' + (cls || '') }, h('label', { 'for': id, text: label }), input);
    }
    function select(path, options, value, onchange) {
      var s = h('select', { 'data-path': path, on: { change: function () { onchange(s.value); } } },
        options.map(function (o) { return h('option', { value: o[0], text: o[1] }); }));
      s.value = value === undefined ? '' : value;
      return s;
    }
    function input(path, value, oninput, attrs) {
      var a = Object.assign({ type: 'text', 'data-path': path, value: value === undefined ? '' : String(value) }, attrs || {});
      var i = h('input', a);
      i.addEventListener('input', function () { oninput(i.value); changed(); });
      return i;
    }
    function number(path, value, onset) {
      return input(path, value, function (v) { onset(parseInt(v, 10) || 0); }, { type: 'number', min: '0', 'class': 'short', inputmode: 'numeric' });
    }
    function removeButton(label, fn) {
      return h('button', { type: 'button', 'class': 'icon', 'aria-label': label, title: label, text: '×', on: { click: fn } });
    }

    // Literal values read like the text form: "teaware", 5, true, ["a","b"].
    function showLit(v) { return v === undefined || v === null ? '' : JSON.stringify(v); }
    function parseLit(s, cmp) {
      s = s.trim();
      if (cmp === 'in') {
        try { var a = JSON.parse(s); if (Array.isArray(a)) return a; } catch (e) { /* a plain list */ }
        return s === '' ? [] : s.split(',').map(function (x) { return parseLit(x, ''); });
      }
      if (s === '') return '';
      try { return JSON.parse(s); } catch (e) { return s; }
    }

    var cmps = [['>=', 'at least (>=)'], ['>', 'more than (>)'], ['=', 'equals (=)'], ['!=', 'is not (!=)'], ['<=', 'at most (<=)'], ['<', 'less than (<)'],
      ['contains', 'contains'], ['in', 'is one of'], ['exists', 'is set'], ['not exists', 'is not set']];
    var units = [['minutes', 'minutes'], ['hours', 'hours'], ['days', 'days']];

    function spanEditor(sp, path) {
      return h('span', { 'class': 'inline' },
        field('Amount', number(path + '.n', sp.n, function (v) { sp.n = v; })),
        field('Unit', select(path + '.unit', units, sp.unit, function (v) { sp.unit = v; changed(); })));
    }

    function windowEditor(w, path) {
      var kinds = [['last', 'in the last…'], ['all', 'all time'], ['today', 'today'], ['week', 'this week'], ['month', 'this month'], ['year', 'this year'], ['between', 'between dates']];
      var box = h('span', { 'class': 'inline' });
      function draw() {
        box.replaceChildren(field('When', select(path + '.kind', kinds, w.kind, function (v) {
          Object.keys(w).forEach(function (k) { delete w[k]; });
          w.kind = v;
          if (v === 'last') { w.n = 30; w.unit = 'days'; }
          if (v === 'between') { w.from = ''; w.to = ''; }
          draw(); changed();
        })));
        if (w.kind === 'last') box.append(spanEditor(w, path));
        if (w.kind === 'between') {
          box.append(field('From', input(path + '.from', w.from, function (v) { w.from = v; }, { type: 'date' })),
            field('To', input(path + '.to', w.to, function (v) { w.to = v; }, { type: 'date' })));
        }
      }
      draw();
      return box;
    }

    function filterEditor(f, path, set) {
      var ops = [['cmp', 'property compares'], ['compare', 'two values compare'], ['items', 'its line items'], ['and', 'all of'], ['or', 'any of'], ['not', 'not']];
      var box = h('div', { 'class': 'node filter' });
      var head = field('Only events where', select(path + '.op', ops, f.op, function (v) {
        var nf = v === 'cmp' ? { op: 'cmp', property: 'properties.category', cmp: '=', value: '' } : v === 'not' ? { op: 'not', args: [f] } :
          v === 'items' ? { op: 'items', func: 'sum', property: 'products.quantity', cmp: '>=', value: 24 } :
          v === 'compare' ? { op: 'compare', left: defaultExpr('property'), cmp: '!=', right: defaultExpr('profile') } : { op: v, args: [f] };
        set(nf); rerender();
      }));
      box.append(h('div', { 'class': 'node-head' }, head, removeButton('Remove this filter', function () { set(null); rerender(); })));
      if (f.op === 'cmp') {
        box.append(h('div', { 'class': 'inline' },
          field('Property', input(path + '.property', f.property, function (v) { f.property = v; }, { placeholder: 'properties.category', 'class': 'mid' })),
          field('Comparison', select(path + '.cmp', cmps, f.cmp, function (v) { f.cmp = v; if (v === 'exists' || v === 'not exists') delete f.value; rerender(); changed(); })),
          f.cmp === 'exists' || f.cmp === 'not exists' ? null :
            field('Value', input(path + '.value', showLit(f.value), function (v) { f.value = parseLit(v, f.cmp); }, { 'class': 'mid' }))));
      } else if (f.op === 'compare') {
        // Two expressions over the event and the profile as the event arrives.
        box.append(compareEditor(f, path, 'filter'));
      } else if (f.op === 'items') {
        // An aggregate over the event's own line items (sum(products.quantity) >= 24),
        // or some / every item passing a filter (any(...), all(...)).
        var fns = [['sum', 'sum of'], ['count', 'count of'], ['avg', 'average of'], ['min', 'least'], ['max', 'greatest'],
          ['distinct', 'distinct values of'], ['any', 'some item is'], ['all', 'every item is']];
        var some = f.func === 'any' || f.func === 'all';
        var row = h('div', { 'class': 'inline' }, field('Line items', select(path + '.func', fns, f.func, function (v) {
          f.func = v;
          if (v === 'any' || v === 'all') {
            delete f.cmp; delete f.value;
            f.property = String(f.property || 'products').split('.')[0];
            if (!f.where) f.where = { op: 'cmp', property: f.property + '.category', cmp: '=', value: '' };
          } else if (!f.cmp) { f.cmp = '>='; f.value = 1; }
          rerender(); changed();
        })));
        row.append(field(some ? 'Items' : 'Item value', input(path + '.property', f.property, function (v) { f.property = v; },
          { placeholder: some ? 'products' : 'products.quantity', 'class': 'mid' })));
        if (!some) {
          row.append(field('Comparison', select(path + '.cmp', cmps.slice(0, 6), f.cmp, function (v) { f.cmp = v; changed(); })),
            field('Value', input(path + '.value', showLit(f.value), function (v) { f.value = parseLit(v, f.cmp); }, { 'class': 'short' })));
        }
        box.append(row, whereToggle(f, path));
      } else {
        f.args = f.args || [];
        f.args.forEach(function (a, i) {
          box.append(filterEditor(a, path + '.args.' + i, function (n) { if (n) f.args[i] = n; else f.args.splice(i, 1); }));
        });
        if (f.op !== 'not') box.append(h('button', { type: 'button', 'class': 'small', text: '+ another filter', on: { click: function () { f.args.push({ op: 'cmp', property: 'properties.category', cmp: '=', value: '' }); rerender(); changed(); } } }));
      }
      return box;
    }

    function whereToggle(holder, path) {
      if (holder.where) return filterEditor(holder.where, path + '.where', function (n) { if (n) holder.where = n; else delete holder.where; });
      return h('button', { type: 'button', 'class': 'small', 'data-path': path + '.addwhere', text: '+ only some of these events', on: { click: function () {
        holder.where = { op: 'cmp', property: 'properties.category', cmp: '=', value: '' }; rerender(); changed();
      } } });
    }

    // Scope: which events count, by the source they came in through, the
    // store or location, and the currency (comma-separated; empty = any).
    function scopeEditor(holder, path) {
      function list(key, label, placeholder) {
        var cur = holder.scope && holder.scope[key] ? holder.scope[key].join(', ') : '';
        return field(label, input(path + '.scope.' + key, cur, function (v) {
          var vals = v.split(',').map(function (x) { return x.trim(); }).filter(function (x) { return x !== ''; });
          holder.scope = holder.scope || {};
          if (vals.length) holder.scope[key] = vals; else delete holder.scope[key];
          if (!Object.keys(holder.scope).length) delete holder.scope;
        }, { placeholder: placeholder, 'class': 'mid' }));
      }
      return h('div', { 'class': 'inline' },
        list('sources', 'From sources', 'any source'), list('stores', 'At stores', 'any store'), list('currencies', 'In currencies', 'any currency'));
    }

    function eventInput(path, holder) {
      return field('Event', input(path, holder.event, function (v) { holder.event = v; }, { list: 'dl-events', 'class': 'mid', placeholder: 'Order Completed' }));
    }

    var funcs = [['count', 'number of'], ['sum', 'total of'], ['avg', 'average of'], ['min', 'smallest'], ['max', 'largest'], ['first', 'first'], ['last', 'latest'], ['distinct', 'distinct values of'],
      ['last_time', 'time of the latest'], ['first_time', 'time of the earliest']];
    function noProperty(fn) { return fn === 'count' || fn === 'last_time' || fn === 'first_time'; }

    function aggEditor(a, path) {
      var box = h('div', { 'class': 'agg' });
      box.append(h('div', { 'class': 'inline' },
        field('Measure', select(path + '.func', funcs, a.func, function (v) {
          a.func = v; if (noProperty(v)) { delete a.property; delete a.convert; } else if (!a.property) a.property = 'properties.revenue';
          rerender(); changed();
        })),
        noProperty(a.func) ? null : field('Property', input(path + '.property', a.property, function (v) { a.property = v; }, { placeholder: 'properties.revenue', 'class': 'mid' })),
        noProperty(a.func) || a.func === 'distinct' ? null : field('Convert into', input(path + '.convert', a.convert, function (v) {
          v = v.trim().toUpperCase(); if (v) a.convert = v; else delete a.convert;
        }, { placeholder: 'no conversion', 'class': 'short' })),
        eventInput(path + '.event', a)));
      box.append(scopeEditor(a, path));
      box.append(whereToggle(a, path));
      a.window = a.window || { kind: 'last', n: 30, unit: 'days' };
      box.append(windowEditor(a.window, path + '.window'));
      return box;
    }

    var exprOps = [['trait', 'a computed trait'], ['profile', 'a profile trait'], ['property', 'an event property'], ['aggregate', 'events (count, total…)'],
      ['number', 'a number'], ['string', 'text'], ['bool', 'true or false'], ['call', 'a function of a value'],
      ['+', 'sum of two values, or two texts joined (+)'], ['-', 'difference (−)'], ['*', 'product (×)'], ['/', 'ratio (÷)']];
    // What each context reads: a computed trait (false), a segment
    // condition (true) or an event filter ('filter').
    var exprIn = {
      'false': ['trait', 'aggregate', 'number', '+', '-', '*', '/'],
      'true': ['trait', 'profile', 'aggregate', 'number', 'string', 'bool', 'call', '+', '-', '*', '/'],
      'filter': ['property', 'profile', 'number', 'string', 'bool', 'call', '+', '-', '*', '/']
    };
    var exprFuncs = [['lower', 'lower case'], ['upper', 'upper case'], ['trim', 'trimmed'], ['length', 'length'], ['year', 'year of'], ['month', 'month of'],
      ['day', 'day of the month of'], ['day_of_week', 'day of the week (1 Monday) of'], ['days_between', 'days between']];

    function defaultExpr(op, ctx) {
      switch (op) {
        case 'trait': return { op: 'trait', name: names.traits[0] || '' };
        case 'profile': return { op: 'profile', name: 'first_name' };
        case 'property': return { op: 'property', name: 'properties.shipping_address.name' };
        case 'aggregate': return { op: 'aggregate', aggregate: { func: 'count', event: 'Order Completed', window: { kind: 'last', n: 30, unit: 'days' } } };
        case 'number': return { op: 'number', num: 0 };
        case 'string': return { op: 'string', str: '' };
        case 'bool': return { op: 'bool', bool: true };
        case 'call': return { op: 'call', func: 'lower', args: [defaultExpr(ctx === 'filter' ? 'property' : 'profile')] };
      }
      var leaf = ctx === 'filter' ? 'property' : 'trait';
      return { op: op, args: [defaultExpr(leaf), defaultExpr(leaf)] };
    }

    // compareEditor edits "left cmp right" (or left cmp value, for in,
    // exists and not exists) of a filter ('filter') or a condition (true).
    function compareEditor(c, path, ctx) {
      var box = h('div', {});
      box.append(exprEditor(c.left, path + '.left', function (n) { c.left = n; }, ctx, 'First value'));
      var row = h('div', { 'class': 'inline' }, field('Comparison', select(path + '.cmp', cmps, c.cmp, function (v) {
        c.cmp = v;
        if (v === 'exists' || v === 'not exists') { delete c.value; delete c.right; }
        rerender(); changed();
      })));
      if (c.cmp !== 'exists' && c.cmp !== 'not exists' && c.cmp !== 'in') {
        row.append(field('With', select(path + '.with', [['value', 'a value'], ['expr', 'another value']], c.right ? 'expr' : 'value', function (v) {
          if (v === 'expr') { c.right = defaultExpr(ctx === 'filter' ? 'profile' : 'trait', ctx); delete c.value; } else { delete c.right; c.value = ''; }
          rerender(); changed();
        })));
      }
      box.append(row);
      if (c.right) box.append(exprEditor(c.right, path + '.right', function (n) { c.right = n; }, ctx, 'Second value'));
      else if (c.cmp !== 'exists' && c.cmp !== 'not exists') {
        box.append(field('Value', input(path + '.value', showLit(c.value), function (v) { c.value = parseLit(v, c.cmp); }, { 'class': 'mid' })));
      }
      return box;
    }

    function exprEditor(e, path, set, inCond, label) {
      var allowed = exprIn[String(inCond)] || exprIn['true'];
      var ops = exprOps.filter(function (o) { return allowed.indexOf(o[0]) >= 0 || o[0] === e.op; });
      var box = h('div', { 'class': 'expr' });
      box.append(field(label || 'Value', select(path + '.op', ops, e.op, function (v) {
        var ne = defaultExpr(v, inCond);
        if (ne.args && (v !== 'call')) ne.args[0] = e;
        set(ne); rerender(); changed();
      })));
      switch (e.op) {
        case 'trait':
          box.append(field('Trait', input(path + '.name', e.name, function (v) { e.name = v; }, { list: 'dl-traits', 'class': 'mid' })));
          break;
        case 'profile':
          box.append(field('traits.', input(path + '.name', e.name, function (v) { e.name = v; }, { 'class': 'mid', placeholder: 'birthday' })));
          break;
        case 'number':
          box.append(field('Number', input(path + '.num', e.num || 0, function (v) { e.num = parseFloat(v) || 0; }, { type: 'number', step: 'any', 'class': 'short' })));
          break;
        case 'aggregate':
          box.append(aggEditor(e.aggregate, path + '.aggregate'));
          break;
        case 'property':
          box.append(field('Property', input(path + '.name', e.name, function (v) { e.name = v; }, { 'class': 'mid', placeholder: 'properties.shipping_address.name' })));
          break;
        case 'string':
          box.append(field('Text', input(path + '.str', e.str || '', function (v) { e.str = v; }, { 'class': 'mid' })));
          break;
        case 'bool':
          box.append(field('Is', select(path + '.bool', [['true', 'true'], ['false', 'false']], e.bool ? 'true' : 'false', function (v) { e.bool = v === 'true'; changed(); })));
          break;
        case 'call':
          e.args = e.args || [];
          box.append(field('Function', select(path + '.func', exprFuncs, e.func, function (v) {
            e.func = v;
            var want = v === 'days_between' ? 2 : 1;
            while (e.args.length < want) e.args.push(defaultExpr(inCond === 'filter' ? 'property' : 'profile', inCond));
            e.args.length = want;
            rerender(); changed();
          })));
          e.args.forEach(function (a, i) {
            box.append(h('div', { 'class': 'node' }, exprEditor(a, path + '.args.' + i, function (n) { e.args[i] = n; }, inCond, i === 0 ? 'Of' : 'And')));
          });
          break;
        default:
          (e.args || []).forEach(function (a, i) {
            box.append(h('div', { 'class': 'node' }, exprEditor(a, path + '.args.' + i, function (n) { e.args[i] = n; }, inCond, i === 0 ? 'First value' : 'Second value')));
          });
      }
      return box;
    }

    var condOps = [['cmp', 'a value compares'], ['and', 'all of these hold'], ['or', 'any of these holds'], ['not', 'this does not hold'],
      ['segment', 'is in another segment'], ['performed', 'did an event'], ['not_performed', 'did not do an event'],
      ['not_followed', 'did one event without another after it'], ['anniversary', 'has an anniversary coming up'],
      ['ago', 'a date is more than … ago'], ['within_last', 'a date is within the last …'],
      ['rank', 'ranks among other people (top 20%, percentile…)']];

    // Population-relative conditions (rule/doc.go): how a computed
    // trait ranks the person among everyone, or among a segment's members.
    var rankFuncs = [['top', 'in the top … %'], ['bottom', 'in the bottom … %'], ['rank', 'rank (1 = highest)'],
      ['percentile', 'percentile (0 to 100)'], ['quartile', 'quartile (1 to 4)'], ['quintile', 'quintile (1 to 5)'], ['decile', 'decile (1 to 10)']];

    function defaultCond(op, old) {
      switch (op) {
        case 'and': case 'or': return { op: op, args: old ? [old] : [defaultCond('cmp')] };
        case 'not': return { op: 'not', args: [old || defaultCond('cmp')] };
        case 'cmp': return { op: 'cmp', left: defaultExpr(names.traits.length ? 'trait' : 'aggregate'), cmp: '>=', value: 1 };
        case 'segment': return { op: 'segment', segment: names.segments[0] || '' };
        case 'performed': case 'not_performed':
          return { op: op, aggregate: { func: 'count', event: 'Order Completed', window: { kind: 'last', n: 30, unit: 'days' } } };
        case 'not_followed':
          return { op: op, first: { event: 'Checkout Started' }, then: { event: 'Order Completed' }, within: { n: 4, unit: 'hours' }, window: { kind: 'last', n: 7, unit: 'days' } };
        case 'anniversary': return { op: op, profileTrait: 'birthday', within: { n: 7, unit: 'days' } };
        case 'ago': return { op: op, profileTrait: 'created_at', within: { n: 365, unit: 'days' } };
        case 'within_last': return { op: op, profileTrait: 'created_at', within: { n: 30, unit: 'days' } };
        case 'rank': return { op: op, rank: { func: 'top', trait: names.traits[0] || '' }, value: 20 };
      }
    }

    function condEditor(c, path, set, removable) {
      var box = h('div', { 'class': 'node cond', role: 'group', 'aria-label': 'Condition' });
      var head = h('div', { 'class': 'node-head' }, field('Condition', select(path + '.op', condOps, c.op, function (v) {
        var wrap = v === 'and' || v === 'or' || v === 'not';
        set(defaultCond(v, wrap ? c : null)); rerender(); changed();
      })));
      if (removable) head.append(removeButton('Remove this condition', function () { set(null); rerender(); changed(); }));
      box.append(head);
      switch (c.op) {
        case 'and': case 'or': case 'not':
          c.args = c.args || [];
          c.args.forEach(function (a, i) {
            box.append(condEditor(a, path + '.args.' + i, function (n) {
              if (n) c.args[i] = n; else c.args.splice(i, 1);
            }, c.op !== 'not'));
          });
          if (c.op !== 'not') {
            box.append(h('button', { type: 'button', 'class': 'small', 'data-path': path + '.add', text: '+ add a condition', on: { click: function () {
              c.args.push(defaultCond('cmp')); rerender(); changed();
            } } }));
          }
          break;
        case 'cmp':
          box.append(compareEditor(c, path, true));
          break;
        case 'segment':
          box.append(field('Segment', input(path + '.segment', c.segment, function (v) { c.segment = v; }, { list: 'dl-segments', 'class': 'mid' })));
          break;
        case 'performed': case 'not_performed':
          c.aggregate.func = 'count';
          box.append(h('div', { 'class': 'inline' }, eventInput(path + '.aggregate.event', c.aggregate)));
          box.append(scopeEditor(c.aggregate, path + '.aggregate'));
          box.append(whereToggle(c.aggregate, path + '.aggregate'));
          box.append(windowEditor(c.aggregate.window, path + '.aggregate.window'));
          break;
        case 'not_followed':
          box.append(h('div', { 'class': 'inline' }, eventInput(path + '.first.event', c.first)), scopeEditor(c.first, path + '.first'), whereToggle(c.first, path + '.first'));
          box.append(h('p', { 'class': 'muted small', text: 'not followed by' }));
          box.append(h('div', { 'class': 'inline' }, eventInput(path + '.then.event', c.then)), scopeEditor(c.then, path + '.then'), whereToggle(c.then, path + '.then'));
          // within: a deadline; open: no such event at or after it up to
          // now; for: up to now, standing for at least a span.
          var mode = c.within ? 'within' : c['for'] ? 'for' : 'open';
          box.append(h('div', { 'class': 'inline' },
            field('After it', select(path + '.followMode', [['within', 'within a deadline'], ['open', 'ever since (up to now)'], ['for', 'ever since, for at least']], mode, function (v) {
              delete c.within; delete c['for'];
              if (v === 'within') c.within = { n: 4, unit: 'hours' };
              if (v === 'for') c['for'] = { n: 4, unit: 'hours' };
              rerender(); changed();
            })),
            mode === 'within' ? spanEditor(c.within, path + '.within') : mode === 'for' ? spanEditor(c['for'], path + '.for') : null));
          box.append(windowEditor(c.window, path + '.window'));
          break;
        case 'ago': case 'within_last':
          // The date: a profile trait, or a value such as the time of
          // the latest order (last time of "Order Completed").
          box.append(field('Date of', select(path + '.dateOf', [['profile', 'a profile trait'], ['value', 'an event or computed trait']], c.left ? 'value' : 'profile', function (v) {
            if (v === 'value') { delete c.profileTrait; c.left = { op: 'aggregate', aggregate: { func: 'last_time', event: 'Order Completed', window: { kind: 'all' } } }; }
            else { delete c.left; c.profileTrait = 'created_at'; }
            rerender(); changed();
          })));
          if (c.left) {
            box.append(exprEditor(c.left, path + '.left', function (n) { c.left = n; }, false));
            box.append(h('div', { 'class': 'inline' },
              h('span', { 'class': 'muted small', text: c.op === 'ago' ? 'more than' : 'within the last' }),
              spanEditor(c.within, path + '.within'),
              c.op === 'ago' ? h('span', { 'class': 'muted small', text: 'ago' }) : null));
            break;
          }
          /* falls through */
        case 'rank':
          c.rank = c.rank || { func: 'top', trait: '' };
          var pct = c.rank.func === 'top' || c.rank.func === 'bottom';
          box.append(h('div', { 'class': 'inline' },
            field('Computed trait', input(path + '.rank.trait', c.rank.trait, function (v) { c.rank.trait = v; }, { list: 'dl-traits', 'class': 'mid' })),
            field('Ranked by', select(path + '.rank.func', rankFuncs, c.rank.func, function (v) {
              var wasPct = pct;
              c.rank.func = v;
              if (v === 'top' || v === 'bottom') { delete c.cmp; if (!wasPct) c.value = 20; }
              else {
                c.cmp = c.cmp || '>=';
                c.value = v === 'percentile' ? 50 : v === 'rank' ? 10 : v === 'quartile' ? 4 : v === 'quintile' ? 5 : v === 'decile' ? 10 : 1;
                if (v === 'rank') c.cmp = '<=';
              }
              rerender(); changed();
            })),
            pct ? null : field('Compares', select(path + '.cmp', cmps.slice(0, 6), c.cmp, function (v) { c.cmp = v; changed(); })),
            field(pct ? 'Percent' : 'Number', input(path + '.value', c.value, function (v) { c.value = parseFloat(v) || 0; }, { type: 'number', step: 'any', 'class': 'short' })),
            field('Among (segment, empty: everyone)', input(path + '.rank.among', c.rank.among, function (v) { if (v) c.rank.among = v; else delete c.rank.among; }, { list: 'dl-segments', 'class': 'mid' }))));
          box.append(h('p', { 'class': 'muted small', text: 'Ties share a rank. Only people with a value of the trait (and in the segment, if named) are ranked; updated in real time as others change.' }));
          break;
        case 'anniversary':
          box.append(h('div', { 'class': 'inline' },
            field('Date trait (traits.)', input(path + '.profileTrait', c.profileTrait, function (v) { c.profileTrait = v; }, { 'class': 'mid' })),
            h('span', { 'class': 'muted small', text: c.op === 'anniversary' ? 'within the next' : c.op === 'ago' ? 'more than' : 'within the last' }),
            spanEditor(c.within, path + '.within'),
            c.op === 'ago' ? h('span', { 'class': 'muted small', text: 'ago' }) : null));
          break;
      }
      return box;
    }

    function freshnessEditor() {
      var f = def.freshness || { mode: '' };
      var modes = [['', 'default (real time)'], ['realtime', 'real time'], ['every', 'every…'], ['cron', 'on a schedule'], ['manual', 'only when recomputed']];
      var box = h('span', { 'class': 'inline' }, field('Kept fresh', select('freshness.mode', modes, f.mode, function (v) {
        if (!v) delete def.freshness;
        else def.freshness = v === 'every' ? { mode: v, every: { n: 1, unit: 'hours' } } : v === 'cron' ? { mode: v, cron: '0 6 * * *' } : { mode: v };
        rerender(); changed();
      })));
      if (f.mode === 'every') box.append(spanEditor(f.every, 'freshness.every'));
      if (f.mode === 'cron') {
        box.append(field('Schedule (cron)', input('freshness.cron', f.cron, function (v) { f.cron = v; }, { 'class': 'mid' })),
          field('Time zone', input('freshness.tz', f.tz, function (v) { if (v) f.tz = v; else delete f.tz; }, { 'class': 'mid', placeholder: 'Europe/London' })));
      }
      return box;
    }

    function renderForm() {
      uid = 0;
      var kinds = [['segment', 'Segment (a group of people)'], ['trait', 'Computed trait (a number per person)']];
      var top = h('div', { 'class': 'top-fields' },
        field('Kind', select('kind', kinds, def.kind, function (v) {
          def.kind = v;
          if (v === 'trait') { delete def.condition; delete def.static; def.value = def.value || defaultExpr('aggregate'); delete def.freshness; delete def.backfill; }
          else { delete def.value; def.condition = def.condition || defaultCond('cmp'); }
          rerender(); changed();
        })),
        field('Name (used in the API)', input('name', def.name, function (v) { def.name = v; }, { pattern: '[A-Za-z_][A-Za-z0-9_]*', required: true, 'class': 'mid', autocomplete: 'off' })),
        field('Title', input('title', def.title, function (v) { if (v) def.title = v; else delete def.title; }, { 'class': 'wide' })),
        field('Description', input('description', def.description, function (v) { if (v) def.description = v; else delete def.description; }, { 'class': 'wide' })));
      var body = h('div', { 'class': 'def-body' });
      if (def.kind === 'segment') {
        top.append(field('Members', select('static', [['', 'match the conditions below'], ['yes', 'are an uploaded list']], def.static ? 'yes' : '', function (v) {
          if (v) { def.static = true; delete def.condition; } else { delete def.static; def.condition = defaultCond('cmp'); }
          rerender(); changed();
        })));
        if (!def.static) {
          def.condition = def.condition || defaultCond('cmp');
          body.append(h('h3', { text: 'Who is in it' }), condEditor(def.condition, 'condition', function (n) { def.condition = n || defaultCond('cmp'); }, false));
        }
        body.append(h('div', { 'class': 'inline options' }, freshnessEditor(),
          field('When first saved, act on', select('backfill', [['', 'default (new entries)'], ['new', 'new entries only'], ['all', 'everyone already in it'], ['none', 'nobody']], def.backfill || '', function (v) {
            if (v) def.backfill = v; else delete def.backfill; changed();
          }))));
      } else {
        def.value = def.value || defaultExpr('aggregate');
        body.append(h('h3', { text: 'Its value' }), h('div', { 'class': 'node' }, exprEditor(def.value, 'value', function (n) { def.value = n; }, false)));
      }
      formEl.replaceChildren(top, body);
    }

    function rerender() {
      var active = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.path : null;
      renderForm();
      if (active) {
        var again = formEl.querySelector('[data-path="' + active + '"]');
        if (again) again.focus();
      }
    }

    function showErrors(errs) {
      errorsEl.replaceChildren();
      text.removeAttribute('aria-invalid');
      if (!errs || !errs.length) return;
      text.setAttribute('aria-invalid', 'true');
      var ul = h('ul');
      errs.forEach(function (e) {
        var li = h('li');
        if (e.line) {
          li.append(h('button', { type: 'button', 'class': 'link', 'data-line': e.line, 'data-col': e.col, text: 'line ' + e.line + ', column ' + e.col }), ': ');
        }
        li.append(e.msg);
        ul.append(li);
      });
      errorsEl.append(ul);
    }

    // Clicking an error puts the cursor where it is.
    errorsEl.addEventListener('click', function (ev) {
      var b = ev.target.closest('button[data-line]');
      if (!b) return;
      var lines = text.value.split('\n');
      var line = +b.dataset.line, col = +b.dataset.col, off = 0;
      for (var i = 0; i < line - 1 && i < lines.length; i++) off += lines[i].length + 1;
      off += Math.max(0, col - 1);
      text.focus();
      text.setSelectionRange(off, Math.min(off + 1, text.value.length));
    });

    var changed = debounce(function () {
      if (!def) return;
      pending = post('/ui/builder/format', { definition: def }).then(function (r) {
        if (r.text !== undefined) text.value = r.text;
        showErrors(r.errors);
        staleEl.hidden = true;
        previewEl.hidden = true;
      }).catch(function (e) { showErrors([{ msg: e.message }]); });
    }, 150);

    function parseText() {
      pending = post('/ui/builder/parse', { text: text.value }).then(function (r) {
        showErrors(r.errors);
        if (!r.definition) { staleEl.hidden = !def; return; }
        staleEl.hidden = true;
        def = r.definition;
        renderForm();
      }).catch(function (e) { showErrors([{ msg: e.message }]); });
      previewEl.hidden = true;
    }
    text.addEventListener('input', debounce(parseText, 300));

    document.getElementById('preview-btn').addEventListener('click', function () {
      var btn = this;
      btn.disabled = true;
      previewEl.hidden = false;
      previewEl.replaceChildren(h('p', { 'class': 'muted', text: 'Working it out from all stored events…' }));
      new Promise(function (ok) { setTimeout(ok, 300); }).then(function () { return pending; }).then(function () {
        return post('/ui/builder/preview', { text: text.value });
      }).then(function (p) {
        previewEl.replaceChildren();
        if (p.errors && p.errors.length) {
          showErrors(p.errors);
          previewEl.append(h('p', { 'class': 'error-box', text: 'Fix the problems above to see a preview.' }));
          return;
        }
        if (p.kind !== 'segment') {
          previewEl.append(h('p', { text: 'This trait is valid' + (p.new ? '' : ' (it changes the saved one)') + '.' }));
        } else {
          previewEl.append(h('p', { 'class': 'preview-num' }, h('span', { id: 'preview-size', text: p.size.toLocaleString() }),
            (p.size === 1 ? ' person ' : ' people ') + (p.unchanged ? 'are in ' : 'would be in ') + p.title));
          if (p.unchanged) previewEl.append(h('p', { 'class': 'muted', text: 'This is the saved definition: nothing would change.' }));
          else if (!p.new) previewEl.append(h('p', { 'class': 'muted', text: 'Now ' + p.before.toLocaleString() + ': ' + p.entered.toLocaleString() + ' would enter and ' + p.exited.toLocaleString() + ' would leave.' }));
        }
        if (p.sample && p.sample.length) {
          var ul = h('ul', { 'class': 'sample', id: 'preview-sample' });
          p.sample.forEach(function (m) {
            ul.append(h('li', {}, h('a', { href: '/ui/profiles/' + encodeURIComponent(m.id), target: '_blank', rel: 'noopener', text: m.name || m.ident || m.id }),
              m.name && m.ident ? h('span', { 'class': 'muted small', text: ' ' + m.ident }) : null));
          });
          previewEl.append(h('p', { 'class': 'small', text: 'For example:' }), ul);
        }
        if (p.others && p.others.length) {
          previewEl.append(h('p', { 'class': 'muted small', text: 'Also changes: ' + p.others.map(function (o) { return o.name + ' (+' + o.entered + ' / −' + o.exited + ')'; }).join(', ') }));
        }
        previewEl.append(h('p', { 'class': 'muted small', text: 'Worked out in ' + p.took + '. Nothing is saved until you press Save.' }));
      }).catch(function (e) {
        previewEl.replaceChildren(h('p', { 'class': 'error-box', text: 'Preview failed: ' + e.message }));
      }).then(function () { btn.disabled = false; });
    });

    // Save only once the text matches the form.
    var saving = false;
    saveForm.addEventListener('submit', function (ev) {
      if (saving) return;
      ev.preventDefault();
      setTimeout(function () { // let a pending form change reach the text first
        Promise.resolve(pending).then(function () { saving = true; saveForm.submit(); });
      }, 300);
    });

    parseText();
  }
})();
